"""The fast fake upstream: an OpenAI-shaped server that answers at once, as its own process.

`POST /chat/completions` returns a fixed, realistic ~600-byte chat.completion; with
`"stream": true` it sends an event stream instead: the first chunk at once, then one chunk every
`--pacing-ms` until `--chunks` chunks are out, then (when the request sets
`stream_options.include_usage`, as OpenAI does) a usage-only chunk, then `data: [DONE]`; the
usage chunk and `[DONE]` follow the last chunk at once. `GET /models` lists one
model. Every route is also served under `/v1`, so a client can use the same base URL shape
(`http://host:port/v1`) for a direct call as for a proxy. Answers are prebuilt bytes: the
upstream should cost as little CPU per request as aiohttp allows, since it shares a core with
the load generator. uvloop, no access log.

    python -m bench.upstream --port 9001 [--chunks 20] [--pacing-ms 10]
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

import orjson
from aiohttp import web

from bench.serving import serve

MODEL = "gpt-4o-mini-2024-07-18"
_CREATED = 1741569952
_ID = "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
_FINGERPRINT = "fp_06737a9306"
_WORDS = ("The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".")

# Headers a real OpenAI answer carries: a proxy pays for copying each of them.
_HEADERS = {
    "openai-organization": "user-bench",
    "openai-processing-ms": "312",
    "openai-version": "2020-10-01",
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-requests": "9999",
    "x-request-id": "req_5b8a1c3e9f2d4a6b8c0e1f2a3b4c5d6e",
}


def completion_body() -> bytes:
    return orjson.dumps({
        "id": _ID, "object": "chat.completion", "created": _CREATED, "model": MODEL,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant",
                        "content": "The quick brown fox jumps over the lazy dog: a "
                                   "pangram, every letter once or more.",
                        "refusal": None, "annotations": []},
            "logprobs": None, "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": 19, "completion_tokens": 24, "total_tokens": 43,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0},
        },
        "service_tier": "default", "system_fingerprint": _FINGERPRINT,
    })


def stream_events(chunks: int) -> list[bytes]:
    """`chunks` SSE events (the last one carries finish_reason), then `[DONE]`."""
    base = {"id": _ID, "object": "chat.completion.chunk", "created": _CREATED, "model": MODEL,
            "service_tier": "default", "system_fingerprint": _FINGERPRINT}
    events = []
    for i in range(chunks):
        last = i == chunks - 1
        delta: dict[str, object] = {} if last else {"content": _WORDS[i % len(_WORDS)]}
        if i == 0:
            delta = {"role": "assistant", "content": "", "refusal": None}
        choice = {"index": 0, "delta": delta, "logprobs": None,
                  "finish_reason": "stop" if last else None}
        events.append(b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def usage_event() -> bytes:
    """The usage-only chunk OpenAI sends last when `stream_options.include_usage` is set."""
    return b"data: " + orjson.dumps({
        "id": _ID, "object": "chat.completion.chunk", "created": _CREATED, "model": MODEL,
        "service_tier": "default", "system_fingerprint": _FINGERPRINT, "choices": [],
        "usage": {"prompt_tokens": 19, "completion_tokens": 19, "total_tokens": 38}}) + b"\n\n"


def models_body() -> bytes:
    return orjson.dumps({"object": "list", "data": [
        {"id": MODEL, "object": "model", "created": _CREATED, "owned_by": "system"}]})


def create_upstream(*, chunks: int = 20, pacing_s: float = 0.01) -> web.Application:
    completion = completion_body()
    events = stream_events(max(chunks, 1))
    with_usage = [*events[:-1], usage_event(), events[-1]]
    models = models_body()

    async def chat_completions(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        if not (isinstance(body, dict) and body.get("stream") is True):
            return web.Response(body=completion, content_type="application/json",
                                headers=_HEADERS)
        options = body.get("stream_options")
        usage = isinstance(options, dict) and options.get("include_usage") is True
        response = web.StreamResponse(headers={
            **_HEADERS, "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache"})
        try:
            await response.prepare(request)
            for i, event in enumerate(with_usage if usage else events):
                if 0 < i < len(events) - 1:  # usage and [DONE] follow the last chunk at once
                    await asyncio.sleep(pacing_s)
                await response.write(event)
            await response.write_eof()
        except ConnectionResetError:  # the client left mid-stream (wrk does, at its end)
            pass
        return response

    async def list_models(request: web.Request) -> web.Response:
        return web.Response(body=models, content_type="application/json", headers=_HEADERS)

    app = web.Application()
    for prefix in ("", "/v1"):
        app.router.add_post(f"{prefix}/chat/completions", chat_completions)
        app.router.add_get(f"{prefix}/models", list_models)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=20, help="SSE chunks per stream")
    parser.add_argument("--pacing-ms", type=float, default=10.0, help="pause between chunks")
    args = parser.parse_args(argv)
    return serve(create_upstream(chunks=args.chunks, pacing_s=args.pacing_ms / 1000),
                 args.host, args.port)


if __name__ == "__main__":
    raise SystemExit(main())
