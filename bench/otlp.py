"""A live OTLP receiver for the telemetry rows, as its own process.

`rotel` (a Rust OpenTelemetry collector from PyPI, `pip install -e '.[bench]'`) when it is
installed: it receives OTLP/gRPC, the protocol most deployments export with, and discards what
it gets (`--exporter blackhole`), so the sidecar pays for exporting and nothing else. Without
it, this module's own sink (`python -m bench.otlp --port N`): aiohttp answering every OTLP/HTTP
export with 200 and an empty (valid) protobuf response, counting requests and bytes per path at
`GET /stats`; the telemetry rows then export over OTLP/HTTP instead, and the report says so.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from bench.serving import serve


@dataclass(frozen=True, slots=True)
class Receiver:
    """How to start a receiver and what the sidecar's exporter config must say."""

    name: str  # rotel | sink
    protocol: str  # grpc | http: telemetry.exporters[].protocol
    endpoint: str  # telemetry.exporters[].endpoint
    argv: list[str]
    port: int  # probed for readiness (any HTTP answer)


def find_rotel() -> str | None:
    """The rotel-agent binary: shipped inside the `rotel` wheel, or on PATH."""
    spec = importlib.util.find_spec("rotel")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).with_name("rotel-agent")
        if binary.exists():
            return str(binary)
    return shutil.which("rotel-agent")


def plan(python: str, grpc_port: int, http_port: int, workdir: Path) -> Receiver:
    rotel = find_rotel()
    if rotel is None:
        return Receiver("sink", "http", f"http://127.0.0.1:{http_port}",
                        [python, "-m", "bench.otlp", "--port", str(http_port)], http_port)
    return Receiver(
        "rotel", "grpc", f"http://127.0.0.1:{grpc_port}",
        [rotel, "start", "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
         "--otlp-http-endpoint", f"127.0.0.1:{http_port}", "--exporter", "blackhole",
         # its defaults are /tmp/rotel-agent.{pid,log}: shared by every run on the machine
         "--pid-file", str(workdir / "rotel.pid"), "--log-file", str(workdir / "rotel.log")],
        http_port)


_STATS = web.AppKey("stats", dict[str, int])


def create_sink() -> web.Application:
    async def export(request: web.Request) -> web.Response:
        body = await request.read()
        stats = request.app[_STATS]
        for key, add in ((f"{request.path} requests", 1), (f"{request.path} bytes", len(body))):
            stats[key] = stats.get(key, 0) + add
        # An empty Export*ServiceResponse is zero bytes of protobuf: "all accepted".
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(request.app[_STATS])

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[_STATS] = {}
    app.router.add_get("/stats", stats)
    app.router.add_post("/{tail:.*}", export)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.otlp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    return serve(create_sink(), args.host, args.port)


if __name__ == "__main__":
    raise SystemExit(main())
