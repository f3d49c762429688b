"""Structured logs (structlog; JSON by default) and the one access-log line per request.

`configure_logging` is called by `serve`, never at import. The standard library's loggers
(aiohttp, asyncio) are routed through the same renderer so the whole process speaks one format.
The access line carries ids, sizes and timings only: never a key, a prompt or a completion, and
the path without its query string (queries can carry secrets).
"""

from __future__ import annotations

import logging
import sys
from time import monotonic
from typing import TextIO, cast

import orjson
import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from sidecar.call import CALL
from sidecar.config.schema import Logs
from sidecar.relay import REQUEST_ID_HEADER
from sidecar.runtime import RUNTIME


def _renderer(fmt: str) -> structlog.typing.Processor:
    if fmt == "console":
        return structlog.dev.ConsoleRenderer(colors=False)
    return structlog.processors.JSONRenderer(serializer=lambda o, **_: orjson.dumps(o).decode())


def configure_logging(logs: Logs, stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    level = logging.getLevelNamesMapping()[logs.level.upper()]
    shared: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, _renderer(logs.format)],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    _renderer(logs.format)],
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class AccessLog(AbstractAccessLogger):
    """aiohttp calls `log` once per request after the last byte is sent (streams included)."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        call = request.get(CALL)
        if call is None:  # probes, admin routes, unknown paths: no Call, no proxy metrics
            level = _access.debug if request.path in _PROBES else _access.info
            level("request", request_id=response.headers.get(REQUEST_ID_HEADER),
                  method=request.method, path=request.path, status=response.status,
                  latency_ms=round(time * 1000, 3), bytes_out=response.body_length)
            return
        # loop.time() is millisecond-grained on uvloop; the Call's own clock is not.
        seconds = monotonic() - call.started
        endpoint = call.endpoint or "passthrough"
        metrics = cast(web.Request, request).config_dict[RUNTIME].metrics
        metrics.observe(endpoint, response.status, seconds, call.outcome)
        _access.info(
            "request",
            request_id=call.request_id,
            method=call.method,
            path=request.path,
            endpoint=endpoint,
            model=call.model,
            stream=call.stream,
            status=response.status,
            outcome=call.outcome,
            latency_ms=round(seconds * 1000, 3),
            bytes_in=request.content_length,
            bytes_out=response.body_length,
            key=call.key_name,
            provider=call.provider,
            attempts=call.attempts,
        )


_PROBES = frozenset({"/healthz", "/readyz"})
_access = structlog.get_logger("sidecar.access")
