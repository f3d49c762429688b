"""Where redaction finds the text of a Messages body."""

from __future__ import annotations

from sidecar.privacy.fields import text_slots


def test_every_content_string_and_nothing_else() -> None:
    """System, text blocks, every string of a tool input, tool results, text documents and
    metadata.user_id; not images, tool definitions or thinking."""
    body = {"model": "m", "max_tokens": 5, "system": [{"type": "text", "text": "S"}],
            "metadata": {"user_id": "U"},
            "tools": [{"name": "T", "description": "D", "input_schema": {}}],
            "messages": [
                {"role": "user", "content": "A"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "X", "signature": "Y"},
                    {"type": "text", "text": "B"},
                    {"type": "tool_use", "id": "i", "name": "n",
                     "input": {"k": "C", "deep": [{"v": "D2"}], "n": 3}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "i", "content": "E"},
                    {"type": "tool_result", "tool_use_id": "j",
                     "content": [{"type": "text", "text": "F"}]},
                    {"type": "image", "source": {"type": "base64", "data": "IMG"}},
                    {"type": "document", "source": {"type": "text", "data": "G"}}]}]}
    found = sorted(container[key] for container, key, _ in text_slots("messages", body))
    assert found == ["A", "B", "C", "D2", "E", "F", "G", "S", "U"]
    assert sorted(c[k] for c, k, _ in text_slots("messages/count_tokens", body)) == found
