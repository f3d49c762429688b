"""What serving Anthropic-format clients from an OpenAI-format upstream costs (Messages → chat
completions and back): CPU per request and per event, and the added time to first token.

    .venv/bin/python -m bench.messages [--requests 300] [--loops 2000]

1. Translation CPU, in this process: `translate_request` (+ serializing it) for a realistic
   Messages body (system prompt, 6 turns, 2 tools), `translate_body` for a ~600-byte
   chat.completion, and `EventTranslator.feed` up to the first token, for one content delta,
   and for a whole 20-delta stream.
2. First token, end to end: one fake OpenAI-format upstream (bench/anthropic.py's: its first
   token at once, then one chunk every --pacing-ms), two sidecar processes with the same config
   (`upstream:` that fake), and --requests sequential streams to each, interleaved: an OpenAI
   client on /v1/chat/completions to one (no translation) and an Anthropic client on
   /v1/messages to the other (translated both ways). TTFT is the time from sending to the first
   non-empty text (a content delta / a text_delta event); the sidecars' CPU per streamed
   request comes from /proc. The paired difference is what the Messages endpoint adds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.anthropic import (
    _per_call_us,
    _wait_listening,
    measure_streams,
    openai_events,
    stream_rows,
    ttft,
)
from bench.processes import Fleet, free_port

MODEL = "bench/model-1"
_HEAD = {"id": "chatcmpl-b", "object": "chat.completion.chunk", "created": 1, "model": MODEL}


def _messages_body() -> dict[str, Any]:
    tool = {"name": "weather", "description": "Weather now",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
    turns: list[dict[str, Any]] = []
    for i in range(3):
        turns += [{"role": "user", "content": f"Question {i}: " + "words " * 40},
                  {"role": "assistant", "content": [{"type": "text",
                                                     "text": "An answer. " * 30}]}]
    return {"model": MODEL, "system": "You are helpful. " * 20, "messages": turns,
            "tools": [tool, {**tool, "name": "weather2"}], "max_tokens": 500,
            "temperature": 0.3, "stream": True}


def translation_cpu(loops: int) -> dict[str, float]:
    from sidecar.upstream.messages.request import Plan, Target, translate_request
    from sidecar.upstream.messages.response import translate_body
    from sidecar.upstream.messages.stream import EventTranslator

    body = _messages_body()
    answer = orjson.dumps({
        "id": "chatcmpl-b", "object": "chat.completion", "created": 1, "model": MODEL,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant",
            "content": "The quick brown fox jumps over the lazy dog. " * 8}}],
        "usage": {"prompt_tokens": 25, "completion_tokens": 90, "total_tokens": 115}})
    plan = Plan(MODEL, stream=True)
    events = openai_events()
    usage = b"data: " + orjson.dumps({**_HEAD, "choices": [], "usage": {
        "prompt_tokens": 25, "completion_tokens": 20, "total_tokens": 45}}) + b"\n\n"
    events = [*events[:-1], usage, events[-1]]  # the usage chunk before [DONE]
    first = b"".join(events[:2])  # the role chunk and the first token

    def whole_stream() -> None:
        translator = EventTranslator(plan, "bench")
        for event in events:
            translator.feed(event)

    translator = EventTranslator(plan, "bench")
    translator.feed(first)
    return {
        "request_us": _per_call_us(
            lambda: orjson.dumps(translate_request(body, MODEL, Target())[0]), loops),
        "response_us": _per_call_us(lambda: translate_body(answer, Plan(MODEL)), loops),
        "first_us": _per_call_us(lambda: EventTranslator(plan, "bench").feed(first), loops),
        "event_us": _per_call_us(lambda: translator.feed(events[3]), loops * 5),
        "stream_us": _per_call_us(whole_stream, max(1, loops // 10)),
        "stream_events": len(events),
    }


def _ask(session: aiohttp.ClientSession, name: str, url: str) -> Awaitable[float]:
    body: dict[str, Any] = {"model": MODEL, "stream": True,
                            "messages": [{"role": "user", "content": "Tell me about foxes."}]}
    if name == "messages":
        body["max_tokens"] = 256
        return ttft(session, url, body, b'"type":"text_delta"')
    return ttft(session, url, body)


def end_to_end(requests: int, pacing_ms: float, log_dir: Path) -> dict[str, Any]:
    python = sys.executable
    with Fleet(log_dir) as fleet:
        port = free_port()
        fake = fleet.spawn("fake-openai", [
            python, "-m", "bench.anthropic", "--serve-fake", "openai", "--port", str(port),
            "--pacing-ms", str(pacing_ms)], port=port, ready_path="/", cpus=None)
        config = log_dir / "sidecar.yaml"
        config.write_text(f"upstream: {{url: '{fake.url}/v1'}}\ncache: {{backend: 'off'}}\n")
        sidecars = {}
        for kind in ("chat", "messages"):
            port = free_port()
            sidecars[kind] = fleet.spawn(f"sidecar-{kind}", [
                python, "-m", "sidecar", "serve", "--config", str(config), "--port", str(port)],
                port=port, ready_path="/readyz", cpus=None,
                env={**os.environ, "SIDECAR_STATE_DIR": str(log_dir / kind)})
        for service in sidecars.values():
            service.wait_ready()
        _wait_listening(fake.port)
        urls = {"chat": f"{sidecars['chat'].url}/v1/chat/completions",
                "messages": f"{sidecars['messages'].url}/v1/messages"}
        return measure_streams(sidecars, urls, requests, _ask)


def report(cpu: dict[str, float], e2e: dict[str, Any]) -> str:
    lines = [
        "| Messages → chat translation (CPU, one core) | µs |", "| --- | ---: |",
        f"| request: translate + serialize (system, 6 turns, 2 tools) | {cpu['request_us']:.1f} |",
        f"| answer: ~600-byte chat.completion → message | {cpu['response_us']:.1f} |",
        f"| stream: up to the first token (role chunk, first content delta → message_start, "
        f"content_block_start, text_delta) | {cpu['first_us']:.1f} |",
        f"| stream: one content delta → one text_delta event | {cpu['event_us']:.2f} |",
        f"| stream: a whole {cpu['stream_events']:.0f}-chunk answer (20 deltas, usage, [DONE]) "
        f"| {cpu['stream_us']:.1f} |",
        "",
        *stream_rows(e2e, {"chat": "/v1/chat/completions (no translation)",
                           "messages": "/v1/messages (translated)"},
                     "added by the Messages endpoint"),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.messages", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="streams per endpoint")
    parser.add_argument("--loops", type=int, default=2000, help="micro-benchmark loops")
    parser.add_argument("--pacing-ms", type=float, default=1.0)
    args = parser.parse_args(argv)
    cpu = translation_cpu(args.loops)
    with tempfile.TemporaryDirectory(prefix="bench-messages-") as tmp:
        e2e = end_to_end(args.requests, args.pacing_ms, Path(tmp))
    print(report(cpu, e2e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
