"""What makes an answer worth one more try a tier up (`cascade: true`): `fault(...)`.

    error     the upstream failed: no provider answered (transport errors, open breakers), or
              it answered 5xx, 408 or 429 once the tier's models and retries were spent
    context   it answered 400 or 413 saying the prompt is too long for the model's window
    length    the answer stopped at its length limit before any content (a reasoning model
              that spent the whole budget thinking): finish_reason `length` (`max_tokens`,
              `incomplete`) with no text and no tool call
    refusal   the model declined: a `refusal` field or part, finish_reason `content_filter`,
              Anthropic's stop_reason `refusal`, or a short answer (under 300 characters) that
              opens as a refusal does ("I can't help with that", "I'm sorry, but I cannot")

Never a stream that has started (its first bytes are the client's) and never the sidecar's own
refusals (400, 402 budget, 429 rate limit: a bigger model would be refused the same). Only a
whole answer's body is parsed, and only when a cheap check says it may be at fault.
"""

from __future__ import annotations

from typing import Any

import orjson

from sidecar.call import Answer, Reply
from sidecar.errors import NoProviderAvailable, UpstreamError

__all__ = ["fault"]

_RETRY_STATUS = frozenset({408, 429})
_CONTEXT_HINTS = (b"context_length", b"context length", b"context window", b"maximum context",
                  b"too many tokens", b"prompt is too long")
_REFUSAL_OPENINGS = ("i can't help", "i cannot help", "i can't assist", "i cannot assist",
                     "i can't provide", "i cannot provide", "i'm sorry, but i can't",
                     "i'm sorry, but i cannot", "i am sorry, but i cannot", "sorry, i can't",
                     "i'm unable to", "i am unable to", "i won't be able to",
                     "i can't comply", "i cannot comply")
_SHORT = 300  # characters: a refusal is short; a long answer that starts so is an answer
_SMALL_BODY = 4_096  # bytes: a body this small is parsed to look for a textual refusal


def fault(reply: Reply, answer: Answer) -> str | None:
    """Why this reply should go one tier up, or None."""
    if reply.chunks is not None:
        return None
    if reply.error is not None:
        return "error" if isinstance(reply.error, (UpstreamError, NoProviderAvailable)) else None
    status, body = reply.status, reply.body or b""
    if status >= 400:
        if status >= 500 or status in _RETRY_STATUS:
            return "error"
        lowered = body.lower()
        if status in (400, 413) and any(hint in lowered for hint in _CONTEXT_HINTS):
            return "context"
        return None
    reason = answer.finish_reason
    if reason == "content_filter":
        return "refusal"
    if not (reason == "length" or b'"refusal"' in body or b'"max_tokens"' in body
            or len(body) <= _SMALL_BODY):
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    text, acted, refused, cut = _read(data)
    if refused:
        return "refusal"
    if (cut or reason == "length") and not text.strip() and not acted:
        return "length"
    opening = text.lstrip()[:40].lower().replace("\u2019", "'")
    if len(text) < _SHORT and opening.startswith(_REFUSAL_OPENINGS):
        return "refusal"
    return None


def _read(data: dict[str, Any]) -> tuple[str, bool, bool, bool]:
    """(the answer's text, it called a tool, it refused, it was cut at its length limit) in
    any of the four shapes: chat, completions, Responses, Anthropic Messages."""
    if isinstance(choices := data.get("choices"), list):  # chat and completions
        first = choices[0] if choices and isinstance(choices[0], dict) else {}
        message = first.get("message")
        if isinstance(message, dict):
            refusal = message.get("refusal")
            return (_text(message.get("content")), bool(message.get("tool_calls")),
                    isinstance(refusal, str) and bool(refusal), False)
        return _text(first.get("text")), False, False, False
    if isinstance(output := data.get("output"), list):  # Responses
        texts, acted, refused = [], False, False
        for item in output:
            if not isinstance(item, dict):
                continue
            acted |= item.get("type") == "function_call"
            for part in item.get("content") or ():
                if isinstance(part, dict):
                    refused |= part.get("type") == "refusal"
                    texts.append(_text(part.get("text")))
        return "".join(texts), acted, refused, data.get("status") == "incomplete"
    if isinstance(content := data.get("content"), list):  # Anthropic Messages
        stop = data.get("stop_reason")
        texts = [_text(b.get("text")) for b in content if isinstance(b, dict)]
        acted = any(isinstance(b, dict) and b.get("type") == "tool_use" for b in content)
        return "".join(texts), acted, stop == "refusal", stop == "max_tokens"
    return "", False, False, False


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content parts
        return "".join(p["text"] for p in value if isinstance(p, dict)
                       and isinstance(p.get("text"), str))
    return ""
