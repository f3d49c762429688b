"""Which conversation a request belongs to: the key sticky pools pin and `prompt_cache_key` is
made of, derived once per request (`Call.conversation`).

    session_id (body) or x-session-id   the client named its conversation (OpenRouter's two
                                        spellings): that name, hashed
    else the stable prefix              what every turn of one conversation starts with: the
                                        system prompt (every leading system or developer
                                        message), the tools, and the first other message
                                        (chat); `system`, the tools and the first message
                                        (Anthropic's messages); `instructions`, the tools and
                                        the first input item (Responses API)

Two conversations with the same system prompt, tools and first message are one here (they
share their cached prefix too); a client that wants them apart sends a session id. Endpoints
without turns (completions, embeddings) have no conversation: None.

The key is 32 hex digits of BLAKE2b over the session id or the prefix's JSON (orjson, once):
stable across processes and replicas, so a `prompt_cache_key` means the same thing on every
replica. It is computed on the body after redaction (pseudonyms are deterministic, so it is
stable too) and never leaves the sidecar except as that key.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Any

import orjson

from sidecar.call import Call

MAX_SESSION_ID = 256  # OpenRouter's limit; a longer one is not a session id
_SYSTEM_ROLES = ("system", "developer")


def conversation_key(call: Call) -> str | None:
    """The call's conversation key, derived on first use and kept on the Call ("" for none)."""
    key = call.conversation
    if key is None:
        found = _derive(call) if call.body is not None and call.endpoint in _PREFIXES else None
        key = call.conversation = found or ""
    return key or None


def session_id(call: Call) -> str | None:
    """The conversation's name as the client gave it, if it did."""
    body = call.body
    named = body.get("session_id") if body is not None else None
    if not isinstance(named, str) or not named:
        named = call.headers.get("x-session-id")
    return named if named and len(named) <= MAX_SESSION_ID else None


def _derive(call: Call) -> str | None:
    named = session_id(call)
    if named is not None:
        return blake2b(b"session\0" + named.encode(), digest_size=16).hexdigest()
    assert call.body is not None and call.endpoint is not None
    prefix = _PREFIXES[call.endpoint](call.body)
    if prefix is None:
        return None
    return blake2b(b"prefix\0" + orjson.dumps(prefix), digest_size=16).hexdigest()


def _chat_prefix(body: dict[str, Any]) -> list[Any] | None:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    prefix: list[Any] = [body.get("tools")]
    for message in messages:
        prefix.append(message)
        if not (isinstance(message, dict) and message.get("role") in _SYSTEM_ROLES):
            return prefix
    return prefix


def _messages_prefix(body: dict[str, Any]) -> list[Any] | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    return [body.get("tools"), body.get("system"), messages[0]]


def _responses_prefix(body: dict[str, Any]) -> list[Any] | None:
    given = body.get("input")
    first = given[0] if isinstance(given, list) and given else given
    if first is None:
        return None
    return [body.get("tools"), body.get("instructions"), first]


_PREFIXES = {"chat/completions": _chat_prefix, "messages": _messages_prefix,
             "responses": _responses_prefix}
