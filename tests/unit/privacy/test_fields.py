"""Which strings of a request body redaction sees, per endpoint, and which it leaves alone."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.privacy.fields import text_slots


def seen(endpoint: str, body: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(container[key], is_json) for container, key, is_json in text_slots(endpoint, body)]


def test_chat_messages_of_every_role_and_tool_traffic() -> None:
    """System, user parts, assistant text, reasoning, tool-call arguments (as JSON), tool
    results, legacy function_call, and `user`; image and audio parts are not text."""
    body = {"user": "u", "messages": [
        {"role": "system", "content": "s"},
        {"role": "user", "content": [{"type": "text", "text": "t"},
                                     {"type": "image_url", "image_url": {"url": "data:x"}},
                                     {"type": "input_audio", "input_audio": {"data": "b64"}}]},
        {"role": "assistant", "content": "a", "reasoning": "r", "tool_calls": [
            {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "assistant", "function_call": {"name": "g", "arguments": "[]"}},
        {"role": "tool", "tool_call_id": "1", "content": "result"},
    ], "tools": [{"type": "function", "function": {"name": "f", "description": "d"}}]}
    assert seen("chat/completions", body) == [
        ("s", False), ("t", False), ("a", False), ("r", False), ("{}", True), ("[]", True),
        ("result", False), ("u", False)]


@pytest.mark.parametrize(("endpoint", "body", "expected"), [
    ("completions", {"prompt": ["a", [1, 2]], "suffix": "b"}, ["a", "b"]),
    ("embeddings", {"input": "a"}, ["a"]),
    ("embeddings", {"input": [[1, 2], [3]]}, []),  # token ids
    ("responses", {"instructions": "i", "input": "x"}, ["i", "x"]),
    ("responses", {"input": [
        {"role": "user", "content": [{"type": "input_text", "text": "q"},
                                     {"type": "input_image", "image_url": "data:x"},
                                     {"type": "input_file", "file_data": "b64"}]},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "o"},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "s"}]},
    ]}, ["q", "{}", "o", "s"]),
    ("models", {"input": "x"}, []),
])
def test_other_endpoints(endpoint: str, body: dict[str, Any], expected: list[str]) -> None:
    """Prompts, inputs and instructions; never token ids, images or files."""
    assert [text for text, _ in seen(endpoint, body)] == expected
