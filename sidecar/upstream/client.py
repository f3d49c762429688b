"""The one pooled upstream connection: a single aiohttp ClientSession for the process.

Keep-alive connections are reused across requests (a pool per process, not per request: a new
pool per request costs roughly half the throughput). Cookies are never stored: the session is
shared by every client of the sidecar. Redirects are never followed. Transport failures are
mapped into the error tree here, so the rest of the code sees `UpstreamUnavailable` /
`UpstreamTimeout`, never aiohttp's types.

Every response opened here is released exactly once: `read` releases it, `Body.aclose()` and
`Body.release()` close or release it, and both are safe to call again. The provider that opened
a streamed answer registers `Body.finish` as a finisher of the call, so a stream that never
started still gives its connection back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable

import aiohttp
from multidict import CIMultiDict

from sidecar.config.schema import UpstreamSettings
from sidecar.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable


def transport_error(exc: BaseException, where: str, during: str) -> UpstreamError:
    """An aiohttp/asyncio failure as the sidecar's error; `where` names the provider."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamTimeout(f"Timed out connecting to upstream {where}.")
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return UpstreamTimeout(f"Upstream {where} did not answer in time while {during}.")
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or exc.os_error.__class__.__name__
        return UpstreamUnavailable(f"Cannot connect to upstream {where}: {reason}.")
    return UpstreamUnavailable(f"Upstream {where} broke the connection while {during}.")


class Body:
    """An upstream response body, chunk by chunk as it arrives, as an async iterator.

    Not an async generator on purpose: a generator closed before its first `__anext__` runs
    none of its code, so it could not release the connection. Closing before the end closes the
    upstream connection, which is how a client's disconnect cancels the upstream request.
    """

    __slots__ = ("_during", "_response", "_where")

    def __init__(self, response: aiohttp.ClientResponse, where: str) -> None:
        self._response: aiohttp.ClientResponse | None = response
        self._where = where
        self._during = "streaming the response"

    def __aiter__(self) -> Body:
        return self

    async def __anext__(self) -> bytes:
        response = self._response
        if response is None:
            raise StopAsyncIteration
        try:
            chunk = await response.content.readany()
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.release()
            raise transport_error(exc, self._where, self._during) from exc
        if not chunk:
            self.release()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        self.release()

    def finish(self, call: object) -> None:
        """A finisher (see call.py): the connection is given back on every path."""
        self.release()

    def release(self) -> None:
        """Give the connection back: to the pool after a complete body, else closed."""
        response, self._response = self._response, None
        if response is None:
            return
        if response.content.at_eof():
            response.release()
        else:
            response.close()


class UpstreamClient:
    """A Resource: `start` opens the pool, `close` closes it, `problem` says if it is usable."""

    name = "upstream pool"

    def __init__(self, settings: UpstreamSettings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._timeout = _timeout(settings)

    def reconfigure(self, settings: UpstreamSettings) -> None:
        """Live reload: new connect and read timeouts apply to the next request (the pool and
        its size stay: `upstream.max_connections` needs a restart)."""
        self._settings = settings
        self._timeout = _timeout(settings)

    async def start(self) -> None:
        s = self._settings
        connector = aiohttp.TCPConnector(
            limit=s.max_connections, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            raise_for_status=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def problem(self) -> str | None:
        if self._session is None or self._session.closed:
            return "upstream connection pool is not open"
        return None

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "UpstreamClient.start() was not awaited"
        return self._session

    async def open(
        self,
        method: str,
        url: str,
        *,
        headers: CIMultiDict[str],
        data: bytes | AsyncIterable[bytes] | None,
        decode: bool,
        where: str,
        proxy: str | None = None,
    ) -> aiohttp.ClientResponse:
        """Send the request and return once the upstream's status and headers are in.

        `decode=False` leaves the body exactly as the upstream encoded it (passthrough);
        `decode=True` lets aiohttp negotiate and undo Content-Encoding (model endpoints).
        """
        skip = () if decode else ("Accept-Encoding", "User-Agent", "Accept")
        try:
            return await self.session.request(
                method, url, headers=headers, data=data, allow_redirects=False,
                auto_decompress=decode, skip_auto_headers=skip, proxy=proxy,
                timeout=self._timeout,
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_error(exc, where, "sending the request") from exc

    @staticmethod
    async def read(response: aiohttp.ClientResponse, where: str) -> bytes:
        """The whole body; the connection goes back to the pool (or is closed on failure)."""
        try:
            return await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            response.close()
            raise transport_error(exc, where, "sending the response body") from exc
        finally:
            response.release()


def _timeout(settings: UpstreamSettings) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, sock_connect=settings.connect_timeout_s,
                                 sock_read=settings.read_timeout_s)
