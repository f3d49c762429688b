"""The one pooled upstream connection: a single aiohttp ClientSession for the process.

Keep-alive connections are reused across requests (a pool per process, not per request: a new
pool per request costs roughly half the throughput). Cookies are never stored: the session is
shared by every client of the sidecar. Transport failures are mapped into the error tree here,
so the rest of the code sees `UpstreamUnavailable` / `UpstreamTimeout`, never aiohttp's types.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict

from sidecar.config.schema import Upstream
from sidecar.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable


@dataclass(frozen=True, slots=True)
class Target:
    """Where a request goes: one provider's base URL, credentials and extra headers."""

    name: str
    base_url: str
    api_key: str | None
    headers: tuple[tuple[str, str], ...] = ()

    def url(self, path: str) -> str:
        return self.base_url + path

    @classmethod
    def from_upstream(cls, upstream: Upstream) -> Target:
        key = upstream.api_key.get_secret_value() if upstream.api_key else None
        return cls("upstream", upstream.url, key, tuple(upstream.headers.items()))


def _transport_error(exc: BaseException, target: Target, during: str) -> UpstreamError:
    where = f"{target.name} ({target.base_url})"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamTimeout(f"Timed out connecting to upstream {where}.")
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return UpstreamTimeout(f"Upstream {where} did not answer in time while {during}.")
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or exc.os_error.__class__.__name__
        return UpstreamUnavailable(f"Cannot connect to upstream {where}: {reason}.")
    return UpstreamUnavailable(f"Upstream {where} broke the connection while {during}.")


class UpstreamClient:
    def __init__(self, settings: Upstream) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        s = self._settings
        connector = aiohttp.TCPConnector(
            limit=s.max_connections, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=s.connect_timeout_s,
                                          sock_read=s.read_timeout_s),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            raise_for_status=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def usable(self) -> bool:
        return self._session is not None and not self._session.closed

    async def open(
        self,
        target: Target,
        method: str,
        path: str,
        *,
        headers: CIMultiDict[str],
        data: bytes | AsyncIterable[bytes] | None,
        decode: bool,
    ) -> aiohttp.ClientResponse:
        """Send the request and return once the upstream's status and headers are in.

        `decode=False` leaves the body exactly as the upstream encoded it (passthrough);
        `decode=True` lets aiohttp negotiate and undo Content-Encoding (model endpoints).
        """
        assert self._session is not None, "UpstreamClient.start() was not awaited"
        skip = () if decode else ("Accept-Encoding", "User-Agent", "Accept")
        try:
            return await self._session.request(
                method, target.url(path), headers=headers, data=data, allow_redirects=False,
                auto_decompress=decode, skip_auto_headers=skip,
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_error(exc, target, "sending the request") from exc

    @staticmethod
    async def read(response: aiohttp.ClientResponse, target: Target) -> bytes:
        """The whole body; the connection goes back to the pool."""
        try:
            return await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_error(exc, target, "sending the response body") from exc
        finally:
            response.release()

    @staticmethod
    async def iter_body(response: aiohttp.ClientResponse, target: Target
                        ) -> AsyncGenerator[bytes, None]:
        """The body chunk by chunk as it arrives. Closing the generator early closes the
        upstream connection, which is how a client's disconnect cancels the upstream."""
        try:
            while chunk := await response.content.readany():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_error(exc, target, "streaming the response") from exc
        finally:
            if response.content.at_eof():
                response.release()
            else:
                response.close()
