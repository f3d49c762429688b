"""The floor relay: the thinnest aiohttp forwarder, the best any aiohttp proxy can do here.

Bytes in, bytes out, nothing else: one pooled `ClientSession` opened at start-up
(`auto_decompress=False`), one catch-all route that reads the request body and sends method,
path, body and headers (less hop-by-hop ones and Host) to the upstream. The answer goes back
the cheapest way for its kind, chosen by the upstream's Content-Type:

- an event stream (`text/event-stream`) is relayed chunk by chunk as it arrives, so pacing
  survives (what any proxy must do for streams);
- anything else is read whole and sent as one `web.Response` with its Content-Length: headers
  and body leave in one write, with no chunked framing (what the sidecar does for JSON
  answers). Relaying a 600-byte JSON answer chunk by chunk instead costs an extra write, a
  chunked encoder and a terminating chunk per request, which a proxy that buffers JSON would
  beat, and a floor that can be beaten is not a floor.

No logging, no parsing, no request ids. It runs on the same event loop (uvloop) and aiohttp as
the sidecar, so `sidecar / floor` isolates what the sidecar itself costs. Do not add features
here: a floor that does more is not a floor.

    python -m bench.floor --port 9002 --upstream http://127.0.0.1:9001
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Sequence

import aiohttp
from aiohttp import web

from bench.serving import serve

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "proxy-connection", "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})
_NOT_FORWARDED = HOP_BY_HOP | {"host"}
# A whole body gets its Content-Length from web.Response; the upstream's would be stale if
# aiohttp ever re-framed it, and a stream is sent chunked.
_NOT_RETURNED = HOP_BY_HOP | {"content-length"}
_SESSION = web.AppKey("session", aiohttp.ClientSession)
EVENT_STREAM = "text/event-stream"


def create_floor(upstream: str) -> web.Application:
    base = upstream.rstrip("/")

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        app[_SESSION] = aiohttp.ClientSession(auto_decompress=False,
                                              cookie_jar=aiohttp.DummyCookieJar())
        yield
        await app[_SESSION].close()

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = [(k, v) for k, v in request.headers.items()
                   if k.lower() not in _NOT_FORWARDED]
        async with request.app[_SESSION].request(
                request.method, base + request.raw_path, headers=headers, data=body,
                allow_redirects=False) as upstream_response:
            answer_headers = [(k, v) for k, v in upstream_response.headers.items()
                              if k.lower() not in _NOT_RETURNED]
            if upstream_response.content_type != EVENT_STREAM:
                return web.Response(status=upstream_response.status,
                                    reason=upstream_response.reason,
                                    body=await upstream_response.read(), headers=answer_headers)
            response = web.StreamResponse(status=upstream_response.status,
                                          reason=upstream_response.reason,
                                          headers=answer_headers)
            try:
                await response.prepare(request)
                async for chunk in upstream_response.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except ConnectionResetError:  # the client left mid-stream (wrk does, at its end)
                pass
            return response

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", relay)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:9001")
    args = parser.parse_args(argv)
    return serve(create_floor(args.upstream), args.host, args.port)


if __name__ == "__main__":
    raise SystemExit(main())
