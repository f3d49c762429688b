"""The judge's prompt and how its answer becomes a score."""

from __future__ import annotations

import pytest

from sidecar.compare.judge import MAX_CHARS, judge_body, parse_score, request_text


@pytest.mark.parametrize(("text", "score"), [
    ("0.8", 0.8), ("Score: 1", 1.0), ("0", 0.0), (".5 because", 0.5), ("1.5", None),
    ("seven", None), ("", None), (None, None), ("85", None)])
def test_the_first_number_between_0_and_1_is_the_score(text: str | None,
                                                        score: float | None) -> None:
    """The first number of the answer, when in [0, 1]; anything else is no score."""
    assert parse_score(text) == score


def test_the_request_and_both_answers_are_shown_bounded() -> None:
    """The judge sees the messages (role: text), answer A and answer B, each cut to
    MAX_CHARS, at temperature 0."""
    request = request_text("chat/completions", {"messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
    assert request.startswith("system: be brief\nuser: [")
    body = judge_body("j/model", request, "A" * (MAX_CHARS + 10), "B")
    assert body["model"] == "j/model" and body["temperature"] == 0
    prompt = body["messages"][1]["content"]
    assert "A" * MAX_CHARS in prompt and "A" * (MAX_CHARS + 1) not in prompt
    assert prompt.endswith("Answer B:\nB")
    assert request_text("responses", {"input": "question"}) == "question"
    assert request_text("embeddings", {}) == "(a embeddings request)"
