"""`--upstream demo`: a built-in offline OpenAI-compatible upstream, for trying the sidecar with
no key and no network.

It runs in the sidecar's own process on a loopback port and the sidecar talks to it over HTTP
like any upstream, so everything between the two (pool, headers, streaming relay) is real.
Answers are deterministic echoes of the prompt with realistic `usage` (about four characters per
token), streamed token by token when asked, embeddings derived from a hash of the input, and a
`/models` list with OpenRouter-style prices. `demo/error-<status>` answers with that error.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import re
import struct
import time
from typing import Any

import orjson
from aiohttp import web

from sidecar import sse

TOKEN_DELAY_S = 0.02  # pacing between streamed tokens: the first token visibly arrives early
EMBEDDING_DIMENSIONS = 16
MODELS: dict[str, tuple[str, str]] = {  # id -> (prompt, completion) USD per token, as strings
    "openai/gpt-4o-mini": ("0.00000015", "0.0000006"),
    "openai/gpt-4o": ("0.0000025", "0.00001"),
    "anthropic/claude-3-5-haiku": ("0.0000008", "0.000004"),
    "meta-llama/llama-3.1-8b-instruct": ("0.00000002", "0.00000005"),
    "openai/text-embedding-3-small": ("0.00000002", "0"),
    "demo/echo": ("0", "0"),
}
_WORDS = re.compile(r"\S+\s*")


def tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _answer(prompt: str, max_tokens: Any) -> tuple[list[str], str]:
    pieces = _WORDS.findall(f"Echo: {prompt}".strip()) or ["Echo:"]
    if isinstance(max_tokens, int) and 0 < max_tokens < len(pieces):
        return pieces[:max_tokens], "length"
    return pieces, "stop"


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status,
                        content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": {"message": message, "type": "demo_error", "code": status}}, status)


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _error(400, "demo upstream: body is not JSON")
    if not isinstance(body, dict):
        return _error(400, "demo upstream: body must be a JSON object")
    model = str(body.get("model", "demo/echo"))
    if model.startswith("demo/error-") and model[11:].isdigit():
        return _error(int(model[11:]), f"demo upstream: {model} fails on purpose")
    return body


def _ident(prefix: str, text: str) -> str:
    return f"{prefix}-demo-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    messages = body.get("messages") or []
    prompt_tokens = sum(tokens(_text(m.get("content"))) + 4
                        for m in messages if isinstance(m, dict))
    last_user = next((_text(m.get("content")) for m in reversed(messages)
                      if isinstance(m, dict) and m.get("role") == "user"), "")
    pieces, finish = _answer(last_user, body.get("max_completion_tokens") or body.get("max_tokens"))
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(pieces),
             "total_tokens": prompt_tokens + len(pieces)}
    base = {"id": _ident("chatcmpl", last_user), "created": int(time.time()),
            "model": body.get("model"), "system_fingerprint": "demo"}
    if body.get("stream") is not True:
        message = {"role": "assistant", "content": "".join(pieces)}
        return _json({**base, "object": "chat.completion", "usage": usage, "choices": [
            {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}]})

    chunk = {**base, "object": "chat.completion.chunk"}
    deltas = [{"role": "assistant", "content": ""}, *({"content": p} for p in pieces)]
    events = [{**chunk, "choices": [{"index": 0, "delta": d, "finish_reason": None}]}
              for d in deltas]
    events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append({**chunk, "choices": [], "usage": usage})
    return await _stream(request, events)


async def completions(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    prompt = body.get("prompt", "")
    prompt = " ".join(map(str, prompt)) if isinstance(prompt, list) else str(prompt)
    pieces, finish = _answer(prompt, body.get("max_tokens"))
    usage = {"prompt_tokens": tokens(prompt), "completion_tokens": len(pieces),
             "total_tokens": tokens(prompt) + len(pieces)}
    base = {"id": _ident("cmpl", prompt), "object": "text_completion",
            "created": int(time.time()), "model": body.get("model")}
    if body.get("stream") is not True:
        return _json({**base, "usage": usage, "choices": [
            {"index": 0, "text": "".join(pieces), "finish_reason": finish, "logprobs": None}]})
    events = [{**base, "choices": [{"index": 0, "text": p, "finish_reason": None,
                                    "logprobs": None}]} for p in pieces]
    events.append({**base, "choices": [{"index": 0, "text": "", "finish_reason": finish,
                                        "logprobs": None}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append({**base, "choices": [], "usage": usage})
    return await _stream(request, events)


def embedding(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    raw = [b / 127.5 - 1.0 for b in digest[:EMBEDDING_DIMENSIONS]]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


async def embeddings(request: web.Request) -> web.Response:
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    inputs = body.get("input", "")
    texts = [str(i) for i in inputs] if isinstance(inputs, list) else [str(inputs)]
    data: list[dict[str, Any]] = []
    for index, text in enumerate(texts):
        vector: Any = embedding(text)
        if body.get("encoding_format") == "base64":  # what the OpenAI SDK asks for by default
            vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    used = sum(tokens(t) for t in texts)
    return _json({"object": "list", "model": body.get("model"), "data": data,
                  "usage": {"prompt_tokens": used, "total_tokens": used}})


async def responses(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    given = body.get("input", "")
    prompt = given if isinstance(given, str) else " ".join(
        _text(m.get("content")) for m in given if isinstance(m, dict))
    pieces, _ = _answer(prompt, body.get("max_output_tokens"))
    usage = {"input_tokens": tokens(prompt), "output_tokens": len(pieces),
             "total_tokens": tokens(prompt) + len(pieces)}
    rid = _ident("resp", prompt)
    text = "".join(pieces)
    message = {"type": "message", "id": f"msg-{rid}", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": text, "annotations": []}]}
    done = {"id": rid, "object": "response", "created_at": int(time.time()),
            "model": body.get("model"), "status": "completed", "output": [message],
            "usage": usage}
    if body.get("stream") is not True:
        return _json(done)
    started = {**done, "status": "in_progress", "output": [], "usage": None}
    events: list[dict[str, Any]] = [{"type": "response.created", "response": started}]
    events += [{"type": "response.output_text.delta", "item_id": message["id"],
                "output_index": 0, "content_index": 0, "delta": p} for p in pieces]
    events.append({"type": "response.completed", "response": done})
    return await _stream(request, events, done_marker=False)


async def models(request: web.Request) -> web.Response:
    return _json({"data": [
        {"id": model_id, "name": model_id, "created": 1700000000, "context_length": 128000,
         "pricing": {"prompt": prompt, "completion": completion, "request": "0"},
         "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]}}
        for model_id, (prompt, completion) in MODELS.items()]})


async def _stream(request: web.Request, events: list[dict[str, Any]], *,
                  done_marker: bool = True) -> web.StreamResponse:
    delay = request.app[TOKEN_DELAY]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    for event in events:
        await response.write(sse.encode(event))
        await asyncio.sleep(delay)
    if done_marker:
        await response.write(sse.DONE)
    await response.write_eof()
    return response


async def not_found(request: web.Request) -> web.Response:
    return _error(404, f"demo upstream has no route {request.method} {request.path}")


TOKEN_DELAY = web.AppKey("token_delay", float)


def create_demo_app(token_delay_s: float = TOKEN_DELAY_S) -> web.Application:
    app = web.Application()
    app[TOKEN_DELAY] = token_delay_s
    app.router.add_post("/chat/completions", chat_completions)
    app.router.add_post("/completions", completions)
    app.router.add_post("/embeddings", embeddings)
    app.router.add_post("/responses", responses)
    app.router.add_get("/models", models)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


async def start_demo(host: str = "127.0.0.1") -> tuple[web.AppRunner, str]:
    """Serve the demo on a free loopback port; return its runner and base URL."""
    runner = web.AppRunner(create_demo_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://{host}:{port}"
