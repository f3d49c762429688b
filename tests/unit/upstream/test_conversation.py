"""The conversation key: the client's session id, else the stable prefix, once per request."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.upstream.conversation import MAX_SESSION_ID, conversation_key
from tests.fakes.calls import make_call

SYSTEM = {"role": "system", "content": "You are terse."}


def chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages), **extra}


def key(body: dict[str, Any], headers: dict[str, str] | None = None,
        endpoint: str = "chat/completions") -> str | None:
    call = make_call(body=body, headers=headers)
    call.endpoint = endpoint
    return conversation_key(call)


def test_every_turn_of_a_conversation_has_one_key() -> None:
    """Later turns keep the system prompt and the first message: the key stays the same."""
    first = key(chat(SYSTEM, {"role": "user", "content": "hi"}))
    later = key(chat(SYSTEM, {"role": "user", "content": "hi"},
                     {"role": "assistant", "content": "hello"},
                     {"role": "user", "content": "more"}))
    assert first is not None and first == later and len(first) == 32


@pytest.mark.parametrize("change", ["system", "first_message", "tools"])
def test_another_prefix_is_another_conversation(change: str) -> None:
    """A different system prompt, first message or tool list is another conversation."""
    base = chat(SYSTEM, {"role": "user", "content": "hi"})
    other = {
        "system": chat({"role": "system", "content": "Be loud."},
                       {"role": "user", "content": "hi"}),
        "first_message": chat(SYSTEM, {"role": "user", "content": "bye"}),
        "tools": chat(SYSTEM, {"role": "user", "content": "hi"}, tools=[{"type": "function"}]),
    }[change]
    assert key(base) != key(other)


def test_a_session_id_names_the_conversation() -> None:
    """body session_id or x-session-id: the same name is the same conversation, whatever the
    messages; a name longer than OpenRouter's limit is no name."""
    a = key(chat({"role": "user", "content": "one"}, session_id="s-1"))
    b = key(chat({"role": "user", "content": "two"}), headers={"x-session-id": "s-1"})
    assert a == b
    assert key(chat({"role": "user", "content": "one"}, session_id="s-2")) != a
    long = "x" * (MAX_SESSION_ID + 1)
    assert key(chat({"role": "user", "content": "one"}, session_id=long)) == key(
        chat({"role": "user", "content": "one"}))


def test_responses_api_prefix() -> None:
    """Responses: instructions, tools and the first input item."""
    a = key({"model": "m", "instructions": "terse", "input": [{"role": "user",
                                                                 "content": "hi"}]},
            endpoint="responses")
    b = key({"model": "m", "instructions": "terse", "input": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        endpoint="responses")
    assert a is not None and a == b


def test_endpoints_without_turns_have_no_conversation() -> None:
    """Embeddings and completions: no key, and none is derived again."""
    call = make_call(body={"model": "m", "input": "text"})
    call.endpoint = "embeddings"
    assert conversation_key(call) is None and call.conversation == ""


def test_derived_once_per_request() -> None:
    """The key is kept on the Call: a second ask does not hash again."""
    call = make_call(body=chat({"role": "user", "content": "hi"}))
    first = conversation_key(call)
    call.body = chat({"role": "user", "content": "changed"})
    assert conversation_key(call) == first


def test_anthropic_messages_prefix() -> None:
    """Anthropic's messages: system, tools and the first message; later turns keep the key."""
    def messages(*turns: str) -> str | None:
        return key({"model": "m", "system": "terse", "max_tokens": 9,
                    "messages": [{"role": "user" if i % 2 == 0 else "assistant",
                                  "content": t} for i, t in enumerate(turns)]},
                   endpoint="messages")
    assert messages("hi") is not None
    assert messages("hi") == messages("hi", "hello", "more")
    assert messages("hi") != messages("bye")
