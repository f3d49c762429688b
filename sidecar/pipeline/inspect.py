"""Feed the request inspector (/sidecar/ui): one record per finished request.

Present when `admin.ui` is on. Its finisher, registered before anything else runs, records the
call once its outcome is final; that is all it costs when no page is open. With
`telemetry.capture_content` on (never in zero-retention mode), it also keeps the prompt and the
completion text, in memory only and bounded, for the detail view.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson

from sidecar.call import Call, Next, Reply
from sidecar.inspector import Inspector
from sidecar.privacy.pseudonyms import pseudonymized
from sidecar.sse import event_json, split_events


class Inspect:
    name = "inspect"
    reads_answer = True  # the list shows tokens and the answering model

    def __init__(self, inspector: Inspector) -> None:
        self._inspector = inspector
        self._capture = inspector.content is not None

    async def __call__(self, call: Call, next: Next) -> Reply:
        if not self._capture:
            call.finishers.append(self._inspector.add)
            return await next(call)
        completion: list[str] = []
        call.finishers.append(lambda c: self._finish(c, completion))
        reply = await next(call)
        if reply.body is not None:
            completion.append(_answer_text(reply.body))
        elif reply.sse and reply.chunks is not None:
            reply.chunks = _collect(reply.chunks, completion)
        return reply

    def _finish(self, call: Call, completion: list[str]) -> None:
        self._inspector.add(call)
        content = self._inspector.content
        if content is not None and call.body is not None:
            prompt = {k: call.body[k] for k in ("system", "messages", "prompt", "input",
                                                "instructions") if k in call.body}
            text = "".join(completion)
            if call.pseudonyms:  # as the upstream answered, like the prompt shown
                text = pseudonymized(text, call.pseudonyms, json=False)
            content.put(call.request_id, prompt, text, len(orjson.dumps(prompt)) + len(text))


def _answer_text(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    return _text_of(data, "message")


def _text_of(data: Any, part: str) -> str:
    if not isinstance(data, dict):
        return ""
    if data.get("type") in ("message", "content_block_delta"):  # Anthropic's Messages API
        return _anthropic_text(data)
    choices = data.get("choices")
    if not isinstance(choices, list):
        return ""
    texts = []
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        message = choice.get(part)
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            texts.append(message["content"])
        elif isinstance(choice.get("text"), str):  # completions
            texts.append(choice["text"])
    return "".join(texts)


def _anthropic_text(data: dict[str, Any]) -> str:
    """The text of a message's text blocks, or of one text_delta event."""
    delta = data.get("delta")
    if isinstance(delta, dict):
        text = delta.get("text") if delta.get("type") == "text_delta" else None
        return text if isinstance(text, str) else ""
    return "".join(block["text"] for block in data.get("content") or ()
                   if isinstance(block, dict) and block.get("type") == "text"
                   and isinstance(block.get("text"), str))


async def _collect(chunks: AsyncIterator[bytes], into: list[str]
                   ) -> AsyncGenerator[bytes, None]:
    async for chunk in chunks:
        for event in split_events(chunk):
            into.append(_text_of(event_json(event), "delta"))
        yield chunk
