"""What relaying a Realtime WebSocket costs: frames relayed per second, and the latency the
sidecar adds to each frame.

    .venv/bin/python -m bench.realtime [--frames 20000] [--rounds 2000]

An echo server (aiohttp, its own process) and a sidecar (`llm-sidecar serve`, its own process,
the default configuration: spend on, so its meter searches every frame for the events it bills)
in front of it; the client (aiohttp, this process) opens `/v1/realtime?model=gpt-realtime`
directly and through the sidecar, alternately, for two payloads: a 200-byte JSON event and a
32 KiB one (0.5 s of 24 kHz PCM16 audio, base64: an `input_audio_buffer.append`).

- latency: --rounds sequential round trips (send one frame, wait for its echo); the sidecar
  relays each round trip's two frames, so what it adds per frame is half the paired difference
  of the medians (and of the 99th percentiles);
- throughput: --frames frames sent as fast as the socket takes them while their echoes are
  read; frames per second one way (each is relayed twice: to the echo and back).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
import yaml
from aiohttp import web

from bench.processes import Fleet, free_port

PAYLOADS = {
    "200 B event": orjson.dumps({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "x" * 110}]}}).decode(),
    "32 KiB audio": orjson.dumps({"type": "input_audio_buffer.append",
                                  "audio": base64.b64encode(bytes(24_000)).decode()}).decode(),
}


async def _echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is aiohttp.WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type is aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


def serve_echo(port: int) -> None:
    app = web.Application()
    app.router.add_get("/{tail:.*}", _echo)
    app.router.add_get("/healthz", lambda request: web.Response(text="ok"))
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def _round_trips(url: str, payload: str, rounds: int) -> list[float]:
    out = []
    async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
        for _ in range(rounds):
            began = time.perf_counter()
            await ws.send_str(payload)
            await ws.receive()
            out.append(time.perf_counter() - began)
    return out


async def _throughput(url: str, payload: str, frames: int) -> float:
    async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
        async def send() -> None:
            for _ in range(frames):
                await ws.send_str(payload)

        began = time.perf_counter()
        sender = asyncio.ensure_future(send())
        for _ in range(frames):
            await ws.receive()
        await sender
        return frames / (time.perf_counter() - began)


def _quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1]


async def measure(direct: str, through: str, rounds: int, frames: int) -> list[str]:
    lines = [f"{'payload':<14}{'RTT direct':>12}{'RTT sidecar':>13}{'added/frame':>13}"
             f"{'p99 added':>11}{'frames/s direct':>17}{'frames/s sidecar':>18}"]
    for name, payload in PAYLOADS.items():
        n = rounds if len(payload) < 1000 else rounds // 4
        d, s = [], []
        for _ in range(2):  # alternate, so drift on a busy machine hits both alike
            d += await _round_trips(direct, payload, n // 2)
            s += await _round_trips(through, payload, n // 2)
        count = frames if len(payload) < 1000 else frames // 10
        fd = await _throughput(direct, payload, count)
        fs = await _throughput(through, payload, count)
        md, ms = statistics.median(d), statistics.median(s)
        added = (ms - md) / 2 * 1e6
        added99 = (_quantile(s, 0.99) - _quantile(d, 0.99)) / 2 * 1e6
        lines.append(f"{name:<14}{md * 1e6:>10.0f}µs{ms * 1e6:>11.0f}µs{added:>11.0f}µs"
                     f"{added99:>9.0f}µs{fd:>17,.0f}{fs:>18,.0f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.realtime")
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2_000)
    parser.add_argument("--serve-echo", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_echo:
        serve_echo(args.serve_echo)
        return 0
    echo_port, sidecar_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="bench-realtime-") as tmp, Fleet(Path(tmp)) as fleet:
        config = Path(tmp) / "sidecar.yaml"
        config.write_text(yaml.safe_dump({
            "listen": {"port": sidecar_port}, "state_dir": tmp,
            "upstream": {"url": f"http://127.0.0.1:{echo_port}/v1"},
            "spend": {"fetch_prices": False}}))
        echo = fleet.spawn("echo", [sys.executable, "-m", "bench.realtime", "--serve-echo",
                                    str(echo_port)], port=echo_port, ready_path="/healthz",
                           cpus=None)
        sidecar = fleet.spawn("sidecar", [str(Path(sys.executable).parent / "llm-sidecar"),
                                          "serve", "--config", str(config)],
                              port=sidecar_port, ready_path="/readyz", cpus=None)
        for service in (echo, sidecar):
            service.wait_ready()
        query = "/v1/realtime?model=gpt-realtime"
        lines = asyncio.run(measure(f"http://127.0.0.1:{echo_port}{query}",
                                    f"http://127.0.0.1:{sidecar_port}{query}",
                                    args.rounds, args.frames))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
