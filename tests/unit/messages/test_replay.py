"""A message and its event stream, each made from the other, for the cache."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.messages.replay import fold, unfold
from tests.fakes.anthropic import encode_event, message, stream_events, text, thinking, tool_use

CITED = {"type": "text", "text": "Cited.", "citations": [{"type": "char_location",
                                                          "cited_text": "x"}]}
MESSAGES = {
    "text": message(text("Hello.")),
    "tool": message(text("Calling."), tool_use("t1", "w", {"city": "Oslo", "n": [1, 2]}),
                    stop_reason="tool_use"),
    "thinking": message(thinking("Hmm.", "sig"), text("4")),
    "redacted": message({"type": "redacted_thinking", "data": "enc"}, text("ok")),
    "citations": message(CITED),
    "cache-usage": message(text("c"), usage={"input_tokens": 3, "output_tokens": 2,
                                              "cache_read_input_tokens": 50,
                                              "cache_creation_input_tokens": 5}),
}


@pytest.mark.parametrize("name", list(MESSAGES))
def test_unfold_then_fold_is_the_message(name: str) -> None:
    """A stored message served as a stream and folded back is the same message."""
    original: dict[str, Any] = MESSAGES[name]
    assert fold(unfold(original)) == original


@pytest.mark.parametrize("name", ["text", "tool", "thinking"])
def test_fold_of_anthropic_s_own_stream(name: str) -> None:
    """A stream as Anthropic sends it (pings, split deltas) folds into its message."""
    original = MESSAGES[name]
    events = b"".join(encode_event(e) for e in stream_events(original, parts=3))
    assert fold(events) == original
