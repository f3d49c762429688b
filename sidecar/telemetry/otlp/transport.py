"""OTLP over gRPC and over HTTP/protobuf: send one encoded export request to one destination.

Runs on an exporter thread only, never on the event loop. Each destination has its own
transport: its own connection, headers, compression and timeout, so credentials meant for one
backend never reach another. `send` retries what the OTLP specification calls retryable (gRPC
UNAVAILABLE and friends; HTTP 429, 502, 503, 504 and connection errors) with exponential
backoff, honouring Retry-After, until the destination's `timeout_s` is spent; it returns why it
failed, or None. `close()` interrupts a backoff at once.
"""

from __future__ import annotations

import gzip
import random
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from sidecar import USER_AGENT

__all__ = ["Destination", "Transport", "make_transport"]

Signal = Literal["traces", "metrics", "logs"]
_GRPC_METHODS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
_RETRY_HTTP = frozenset({429, 502, 503, 504})
_FIRST_BACKOFF_S = 0.5


@dataclass(frozen=True, slots=True)
class Destination:
    """Where one signal goes. `url`: the full signal URL for http, scheme://host:port for grpc."""

    signal: Signal
    protocol: Literal["grpc", "http", "console"]
    url: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    gzip: bool = True
    timeout_s: float = 10.0
    ca_file: str | None = None

    @property
    def label(self) -> str:
        """For logs: protocol and address, never a header (headers carry credentials)."""
        if self.protocol == "console":
            return "console (stderr)"
        parts = urlsplit(self.url)
        port = f":{parts.port}" if parts.port else ""
        return f"{self.protocol} {parts.scheme}://{parts.hostname}{port}{parts.path}"


class Transport(Protocol):
    def send(self, payload: bytes) -> str | None:
        """None when delivered, else why not (after retries)."""
        ...

    def close(self) -> None: ...


def make_transport(destination: Destination) -> Transport:
    if destination.protocol == "grpc":
        return GrpcTransport(destination)
    return HttpTransport(destination)


class _Retrying(ABC):
    """The retry loop every transport shares; a subclass makes one attempt."""

    def __init__(self, destination: Destination) -> None:
        self.destination = destination
        self._closed = threading.Event()

    def send(self, payload: bytes) -> str | None:
        deadline = time.monotonic() + self.destination.timeout_s
        backoff = _FIRST_BACKOFF_S
        while True:
            remaining = deadline - time.monotonic()
            error, retry, retry_after = self._attempt(payload, remaining)
            if error is None or not retry:
                return error
            pause = retry_after if retry_after is not None else backoff * random.uniform(0.8, 1.2)
            if pause >= deadline - time.monotonic() or self._closed.wait(pause):
                return error
            backoff *= 2

    @abstractmethod
    def _attempt(self, payload: bytes, timeout: float) -> tuple[str | None, bool, float | None]:
        """(error or None, retryable, Retry-After seconds)."""

    def close(self) -> None:
        self._closed.set()


class HttpTransport(_Retrying):
    def __init__(self, destination: Destination) -> None:
        super().__init__(destination)
        import urllib3  # only when an http destination exists

        self._urllib3 = urllib3
        self._pool = urllib3.PoolManager(num_pools=1, maxsize=1, retries=False,
                                         ca_certs=destination.ca_file)
        self._headers = {"Content-Type": "application/x-protobuf", "User-Agent": USER_AGENT,
                         **dict(destination.headers)}
        if destination.gzip:
            self._headers["Content-Encoding"] = "gzip"

    def send(self, payload: bytes) -> str | None:
        if self.destination.gzip:
            payload = gzip.compress(payload, compresslevel=6)
        return super().send(payload)

    def _attempt(self, payload: bytes, timeout: float) -> tuple[str | None, bool, float | None]:
        try:
            response = self._pool.request(
                "POST", self.destination.url, body=payload, headers=self._headers,
                timeout=self._urllib3.Timeout(total=max(timeout, 0.001)), redirect=False)
        except self._urllib3.exceptions.HTTPError as exc:
            return f"{type(exc).__name__}", True, None
        if 200 <= response.status < 300:
            return None, False, None
        retry_after = response.headers.get("Retry-After")
        seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
        return f"http_{response.status}", response.status in _RETRY_HTTP, seconds

    def close(self) -> None:
        super().close()
        self._pool.clear()


class GrpcTransport(_Retrying):
    def __init__(self, destination: Destination) -> None:
        super().__init__(destination)
        import grpc  # only when a grpc destination exists: grpcio takes ~60 ms to import

        self._grpc = grpc
        parts = urlsplit(destination.url)
        target = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 4317)}"
        options = [("grpc.primary_user_agent", USER_AGENT)]
        if parts.scheme == "https":
            roots = None
            if destination.ca_file:
                with open(destination.ca_file, "rb") as f:
                    roots = f.read()
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(roots),
                                                options)
        else:
            self._channel = grpc.insecure_channel(target, options)
        # Raw bytes both ways: the request is already encoded, the response is not needed.
        self._export: Any = self._channel.unary_unary(_GRPC_METHODS[destination.signal])
        self._metadata = tuple((k.lower(), v) for k, v in destination.headers)
        self._compression = grpc.Compression.Gzip if destination.gzip else None
        self._retryable = frozenset({
            grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.ABORTED, grpc.StatusCode.OUT_OF_RANGE,
            grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
            grpc.StatusCode.RESOURCE_EXHAUSTED})

    def _attempt(self, payload: bytes, timeout: float) -> tuple[str | None, bool, float | None]:
        try:
            self._export(payload, timeout=max(timeout, 0.001), metadata=self._metadata,
                         compression=self._compression)
        except self._grpc.RpcError as exc:
            code: Any = exc.code() if hasattr(exc, "code") else None
            name = code.name if code is not None else type(exc).__name__
            return f"grpc_{name}", code in self._retryable, None
        return None, False, None

    def close(self) -> None:
        super().close()
        self._channel.close()
