"""What translating to Anthropic's Messages API costs: CPU per event and per request, and the
added time to a stream's first token, next to an OpenAI-format stream through the same sidecar.

    .venv/bin/python -m bench.anthropic [--requests 300] [--loops 2000]

1. Translation CPU, in this process: `translate_request` (+ serializing it) for a realistic
   chat (system prompt, 6 turns, 2 tools), `translate_body` for a ~600-byte answer, and
   `StreamTranslator.feed` for one text_delta event and for a whole 20-delta stream.
2. First token, end to end: two fake upstreams (OpenAI chunks / Anthropic events; each sends
   its first token at once, then one event every --pacing-ms), two sidecar processes (one
   `upstream:` to the OpenAI fake, one `format: anthropic` provider to the Anthropic fake), and
   --requests sequential streamed chats to each, interleaved. TTFT is the time from sending to
   the first non-empty content delta; the sidecars' CPU per streamed request comes from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from bench.processes import Fleet, Service, cpu_seconds, free_port
from bench.serving import serve

WORDS = ["The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", "."] * 2
MODEL = "claude-bench-1"
_HEAD = {"id": "chatcmpl-b", "object": "chat.completion.chunk", "created": 1, "model": MODEL}


def _sse(payload: Any, event: str | None = None) -> bytes:
    name = b"event: " + event.encode() + b"\n" if event else b""
    return name + b"data: " + orjson.dumps(payload) + b"\n\n"


def anthropic_events() -> list[bytes]:
    """Anthropic's event sequence for a 20-delta text answer, as the wire carries it."""
    usage = {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 0,
             "cache_creation_input_tokens": 0}
    start = {"type": "message_start", "message": {
        "id": "msg_01Bench", "type": "message", "role": "assistant", "model": MODEL,
        "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}}
    events = [_sse(start, "message_start"), _sse({"type": "ping"}, "ping"),
              _sse({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}, "content_block_start")]
    events += [_sse({"type": "content_block_delta", "index": 0,
                     "delta": {"type": "text_delta", "text": w}}, "content_block_delta")
               for w in WORDS]
    events += [_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
               _sse({"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                        "stop_sequence": None},
                     "usage": {"output_tokens": 20}}, "message_delta"),
               _sse({"type": "message_stop"}, "message_stop")]
    return events


def openai_events() -> list[bytes]:
    events = [_sse({**_HEAD, "choices": [{"index": 0, "delta": {"role": "assistant",
                                                                "content": ""}}]})]
    events += [_sse({**_HEAD, "choices": [{"index": 0, "delta": {"content": w},
                                           "finish_reason": None}]}) for w in WORDS]
    events += [_sse({**_HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
               b"data: [DONE]\n\n"]
    return events


def fake_app(kind: str, pacing_s: float) -> web.Application:
    """A fake upstream: the events up to the first token in one write, then one per pacing."""
    events = anthropic_events() if kind == "anthropic" else openai_events()
    first = 4 if kind == "anthropic" else 2  # events up to and including the first token

    async def stream(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"".join(events[:first]))
        for event in events[first:]:
            await asyncio.sleep(pacing_s)
            await response.write(event)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/messages", stream)
    app.router.add_post("/v1/chat/completions", stream)
    return app


# ---------------------------------------------------------------- 1. translation CPU


def _chat() -> dict[str, Any]:
    tool = {"type": "function", "function": {"name": "weather", "description": "Weather now",
                                             "parameters": {"type": "object", "properties": {
                                                 "city": {"type": "string"}}}}}
    turns: list[dict[str, Any]] = [{"role": "system", "content": "You are helpful. " * 20}]
    for i in range(3):
        turns += [{"role": "user", "content": f"Question {i}: " + "words " * 40},
                  {"role": "assistant", "content": "An answer. " * 30}]
    return {"model": "anthropic/" + MODEL, "messages": turns, "tools": [tool, tool],
            "max_tokens": 500, "temperature": 0.3, "stream": True,
            "stream_options": {"include_usage": True}}


def _per_call_us(fn: Callable[[], object], loops: int, repeats: int = 15) -> float:
    """CPU µs per call: the best of `repeats` short runs, the least disturbed by other
    processes (on a shared machine the mean swings by 2x from one run to the next)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        began = time.process_time()
        for _ in range(loops):
            fn()
        best = min(best, time.process_time() - began)
    return best / loops * 1e6


def translation_cpu(loops: int) -> dict[str, float]:
    from sidecar.upstream.anthropic.request import Plan, translate_request
    from sidecar.upstream.anthropic.response import translate_body
    from sidecar.upstream.anthropic.stream import StreamTranslator

    chat = _chat()
    answer = orjson.dumps({
        "id": "msg_01Bench", "type": "message", "role": "assistant", "model": MODEL,
        "content": [{"type": "text", "text": "The quick brown fox jumps over the lazy dog. " * 8}],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 25, "output_tokens": 90, "cache_read_input_tokens": 0,
                  "cache_creation_input_tokens": 0}})
    plan = Plan(stream=True, include_usage=True)
    events = anthropic_events()
    delta = events[5]

    def whole_stream() -> None:
        translator = StreamTranslator(plan, 1, "claude")
        for event in events:
            translator.feed(event)

    first = b"".join(events[:4])  # message_start, ping, content_block_start, first delta

    def first_token() -> None:
        StreamTranslator(plan, 1, "claude").feed(first)

    translator = StreamTranslator(plan, 1, "claude")
    translator.feed(events[0])
    return {
        "first_us": _per_call_us(first_token, loops),
        "request_us": _per_call_us(lambda: orjson.dumps(translate_request(chat, MODEL)[0]),
                                   loops),
        "response_us": _per_call_us(lambda: translate_body(answer, Plan(), 1), loops),
        "event_us": _per_call_us(lambda: translator.feed(delta), loops * 5),
        "stream_us": _per_call_us(whole_stream, max(1, loops // 10)),
        "stream_events": len(events),
    }


# ---------------------------------------------------------------- 2. first token, end to end


async def ttft(session: aiohttp.ClientSession, url: str, body: dict[str, Any],
               marker: bytes = b'"content":"') -> float:
    """Seconds from sending `body` to the first event carrying text (`marker`)."""
    began = time.perf_counter()
    first = 0.0
    async with session.post(url, json=body) as response:
        async for line in response.content:
            if not first and line.startswith(b"data: {") and marker in line and (
                    b'"content":""' not in line):
                first = time.perf_counter() - began
        assert response.status == 200 and first, f"no token from {url}"
    return first


def _ask(session: aiohttp.ClientSession, name: str, url: str) -> Awaitable[float]:
    return ttft(session, url, {"model": "anthropic/" + MODEL, "stream": True,
                               "messages": [{"role": "user", "content": "Tell me about foxes."}]})


Ask = Callable[[aiohttp.ClientSession, str, str], Awaitable[float]]  # session, name, url


async def first_token(urls: dict[str, str], requests: int, ask: Ask = _ask
                      ) -> dict[str, list[float]]:
    """`requests` first-token times per URL, the URLs alternating in order (paired)."""
    samples: dict[str, list[float]] = {name: [] for name in urls}
    async with aiohttp.ClientSession() as session:
        for name, url in urls.items():  # warm the pools and the code paths
            for _ in range(20):
                await ask(session, name, url)
        for i in range(requests):
            order = list(urls.items()) if i % 2 else list(reversed(urls.items()))
            for name, url in order:
                samples[name].append(await ask(session, name, url))
    return samples


def measure_streams(sidecars: dict[str, Service], urls: dict[str, str], requests: int,
                    ask: Ask = _ask) -> dict[str, Any]:
    """First-token samples per URL and each sidecar's CPU per stream meanwhile."""
    cpu_before = {kind: cpu_seconds(s.pid) for kind, s in sidecars.items()}
    samples = asyncio.run(first_token(urls, requests, ask))
    cpu = {kind: (cpu_seconds(s.pid) - cpu_before[kind]) / requests * 1e6
           for kind, s in sidecars.items()}
    return {"samples": samples, "cpu_us_per_stream": cpu}


def stream_rows(e2e: dict[str, Any], names: dict[str, str], added: str) -> list[str]:
    """The end-to-end table: a row per name (the first is the reference), then what the second
    adds (the paired median of the first-token times, and the CPU per stream)."""
    samples, cpu = e2e["samples"], e2e["cpu_us_per_stream"]
    base, other = names
    pairs = [o - b for o, b in zip(samples[other], samples[base], strict=True)]
    lines = [f"| through the sidecar ({len(pairs)} streams each) | TTFT p50 ms | TTFT p90 ms | "
             "sidecar CPU µs/stream |", "| --- | ---: | ---: | ---: |"]
    for kind, label in names.items():
        lines.append(f"| {label} | {_ms(samples[kind], 0.5):.3f} | "
                     f"{_ms(samples[kind], 0.9):.3f} | {cpu[kind]:.0f} |")
    lines.append(f"| {added} (paired median) | {statistics.median(pairs) * 1e3:.3f} | "
                 f"| {cpu[other] - cpu[base]:.0f} |")
    return lines


def end_to_end(requests: int, pacing_ms: float, log_dir: Path) -> dict[str, Any]:
    python = sys.executable
    with Fleet(log_dir) as fleet:
        fakes = {}
        for kind in ("openai", "anthropic"):
            port = free_port()
            fakes[kind] = fleet.spawn(f"fake-{kind}", [
                python, "-m", "bench.anthropic", "--serve-fake", kind, "--port", str(port),
                "--pacing-ms", str(pacing_ms)], port=port, ready_path="/", cpus=None)
        configs = {
            "openai": f"upstream: {{url: '{fakes['openai'].url}/v1'}}\n",
            "anthropic": ("providers:\n  - {name: claude, format: anthropic, api_key: sk-bench,"
                          f" base_url: '{fakes['anthropic'].url}/v1', strip_prefix: true}}\n"),
        }
        sidecars = {}
        for kind, text in configs.items():
            path = log_dir / f"sidecar-{kind}.yaml"
            path.write_text(text)
            port = free_port()
            sidecars[kind] = fleet.spawn(f"sidecar-{kind}", [
                python, "-m", "sidecar", "serve", "--config", str(path), "--port", str(port)],
                port=port, ready_path="/readyz", cpus=None,
                env={**os.environ, "SIDECAR_STATE_DIR": str(log_dir)})
        for service in [*fakes.values(), *sidecars.values()]:
            if service.ready_path == "/readyz":
                service.wait_ready()
        for service in fakes.values():  # the fakes have no GET route: wait for the socket
            _wait_listening(service.port)
        urls = {kind: f"{s.url}/v1/chat/completions" for kind, s in sidecars.items()}
        return measure_streams(sidecars, urls, requests)


def _wait_listening(port: int, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.01)
    raise RuntimeError(f"nothing listens on port {port}")


def _ms(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


def report(cpu: dict[str, float], e2e: dict[str, Any]) -> str:
    lines = [
        "| translation (CPU, one core) | µs |", "| --- | ---: |",
        f"| request: translate + serialize (system, 6 turns, 2 tools) | {cpu['request_us']:.1f} |",
        f"| answer: ~600-byte message → chat.completion | {cpu['response_us']:.1f} |",
        f"| stream: up to the first token (message_start, ping, content_block_start, first "
        f"text_delta) | {cpu['first_us']:.1f} |",
        f"| stream: one text_delta event → one chunk | {cpu['event_us']:.2f} |",
        f"| stream: a whole {cpu['stream_events']:.0f}-event answer (20 deltas, usage chunk) | "
        f"{cpu['stream_us']:.1f} |",
        "",
        *stream_rows(e2e, {"openai": "openai-format upstream",
                           "anthropic": "anthropic-format upstream"}, "added by translation"),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.anthropic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="streams per format")
    parser.add_argument("--loops", type=int, default=2000, help="micro-benchmark loops")
    parser.add_argument("--pacing-ms", type=float, default=1.0)
    parser.add_argument("--serve-fake", choices=("openai", "anthropic"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_fake:
        return serve(fake_app(args.serve_fake, args.pacing_ms / 1e3), "127.0.0.1", args.port)
    cpu = translation_cpu(args.loops)
    with tempfile.TemporaryDirectory(prefix="bench-anthropic-") as tmp:
        e2e = end_to_end(args.requests, args.pacing_ms, Path(tmp))
    print(report(cpu, e2e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
