"""Read what every feature needs from an answer, once: usage, finish reason, the serving model.

The answer stage (pipeline/answer.py) calls `observe` on each upstream reply to a model
endpoint, with the `Answer` record it put on the Call. JSON answers are parsed once here; an
event stream is watched event by event as it passes (nothing is held back). Spend, telemetry,
the cache, the inspector and the access line then read `call.answer` instead of parsing again.
An error answer is not an answer: only the `usage` an upstream may put in it is kept (a failure
costs what the upstream says it cost).

Shapes understood: chat completions and completions (`choices[].finish_reason`, `usage` with
`prompt_tokens_details` / `completion_tokens_details`, OpenRouter's `usage.cost`), embeddings
(`usage.prompt_tokens`), and the Responses API (`usage.input_tokens` / `output_tokens`, `status`,
streamed as `response.completed` / `response.incomplete` events). The media endpoints: images
(`data[]` entries with `b64_json` or `url` are counted; gpt-image-1's `usage` with
`input_tokens_details.image_tokens`), transcriptions (`usage` of type `tokens` with
`input_token_details.audio_tokens`, or of type `duration` with `seconds`; else a verbose_json
answer's `duration`), and their streams' final events (`usage` at the top of the event).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import orjson

from sidecar.call import Answer, Reply, Usage
from sidecar.sse import event_json, split_events

_RESPONSE_STATUS = {"completed": "stop", "incomplete": "length", "failed": "error",
                    "cancelled": "error"}
# Usage figures beyond these are an upstream's bug, read as missing: no answer has 2^31 tokens
# (context windows stop at a few million) and no request costs a million dollars. Believed,
# one such figure wrote a cost no SQLite INTEGER holds (the ledger batch was lost) and spent
# every budget for the rest of its window.
_MAX_TOKENS = 2**31
_MAX_COST_USD = 1e6
_MAX_SECONDS = 1e7  # of audio: 115 days


Reader = Callable[[Answer, dict[str, Any]], None]  # takes one answer's or event's facts


def observe(answer: Answer, reply: Reply, reader: Reader | None = None) -> Reply:
    """Note the reply's facts in `answer`; a stream is wrapped, never buffered. `reader`: how
    to read one answer or event (OpenAI's shapes by default; Anthropic's: messages/answer.py)."""
    read = note if reader is None else reader
    if reply.body is not None:
        if reply.status >= 400:
            if b'"usage"' in reply.body:
                answer.usage = reported_usage(reply.body)
            return reply
        try:
            data = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            return reply
        if isinstance(data, dict):
            read(answer, data)
    elif reply.sse and reply.chunks is not None and reply.status < 400:
        reply.chunks = _watch(answer, reply.chunks, read)
    return reply


async def _watch(answer: Answer, chunks: AsyncIterator[bytes], read: Reader
                 ) -> AsyncGenerator[bytes, None]:
    async for chunk in chunks:
        for event in split_events(chunk):
            data = event_json(event)
            if isinstance(data, dict):
                read(answer, data)
        yield chunk


def note(answer: Answer, data: dict[str, Any]) -> None:
    """Take usage, finish reason, model and id from one answer or one stream chunk."""
    if isinstance(response := data.get("response"), dict):  # Responses API stream event
        data = response
    if isinstance(model := data.get("model"), str):
        answer.model = model
    if isinstance(answer_id := data.get("id"), str):
        answer.id = answer_id
    choices = data.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and isinstance(reason := choice.get("finish_reason"),
                                                       str):
                answer.finish_reason = reason
    elif isinstance(status := data.get("status"), str) and status in _RESPONSE_STATUS:
        answer.finish_reason = _RESPONSE_STATUS[status]
    usage = data.get("usage")
    if isinstance(usage, dict):
        answer.usage = parse_usage(usage)
    if isinstance(items := data.get("data"), list) and items and isinstance(items[0], dict) and (
            "b64_json" in items[0] or "url" in items[0]):  # images (embeddings have `embedding`)
        answer.usage = answer.usage or Usage()
        answer.usage.images = sum(isinstance(i, dict) and ("b64_json" in i or "url" in i)
                                  for i in items)
    duration: Any = data.get("duration")  # a verbose_json transcription
    if type(duration) in (int, float) and 0 < duration < _MAX_SECONDS and (
            answer.usage is None or not answer.usage.seconds):
        answer.usage = answer.usage or Usage()
        answer.usage.seconds = float(duration)


def reported_usage(body: bytes) -> Usage | None:
    """The `usage` an upstream put in an error answer."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    usage = data.get("usage") if isinstance(data, dict) else None
    return parse_usage(usage) if isinstance(usage, dict) else None


def parse_usage(usage: dict[str, Any]) -> Usage:
    """OpenAI's usage object in any of its shapes (chat, embeddings, Responses). Written out
    rather than with helpers: it runs for every answer (and every usage chunk)."""
    get = usage.get
    prompt = get("prompt_tokens")
    if prompt is None:
        prompt = get("input_tokens")
    completion = get("completion_tokens")
    if completion is None:
        completion = get("output_tokens")
    details = (get("prompt_tokens_details") or get("input_tokens_details")
               or get("input_token_details"))  # (the transcriptions' spelling)
    cached = write = reasoning = media = None
    if type(details) is dict:
        cached, write = details.get("cached_tokens"), details.get("cache_write_tokens")
        media = details.get("image_tokens") or details.get("audio_tokens")
    details = get("completion_tokens_details") or get("output_tokens_details")
    if type(details) is dict:
        reasoning = details.get("reasoning_tokens")
    cost: Any = get("cost")
    seconds: Any = get("seconds")  # a transcription billed by duration: {"type": "duration"}
    return Usage(
        prompt_tokens=prompt if type(prompt) is int and 0 < prompt < _MAX_TOKENS else 0,
        completion_tokens=(completion if type(completion) is int and 0 < completion < _MAX_TOKENS
                           else 0),
        cached_tokens=cached if type(cached) is int and 0 < cached < _MAX_TOKENS else 0,
        cache_write_tokens=write if type(write) is int and 0 < write < _MAX_TOKENS else 0,
        reasoning_tokens=(reasoning if type(reasoning) is int and 0 < reasoning < _MAX_TOKENS
                          else 0),
        cost_usd=(float(cost) if type(cost) in (int, float) and 0 <= cost < _MAX_COST_USD
                  else None),
        media_tokens=media if type(media) is int and 0 < media < _MAX_TOKENS else 0,
        seconds=float(seconds) if type(seconds) in (int, float) and 0 < seconds < _MAX_SECONDS
        else 0.0,
    )
