"""Zero data retention: the rules that keep content out of everything but the two sockets.

In ZDR mode a prompt goes to the upstream and the answer to the client, and nowhere else:
- logs carry no content at any level: exception *messages* are withheld from tracebacks (a bug
  could raise `KeyError(<a piece of the prompt>)`), and third-party log records keep only the
  first line of their message (asyncio's "Task exception was never retrieved" is followed by a
  repr of the exception);
- content capture in spans, a Redis cache and a memory cache the operator did not allow are
  refused or switched off at start (`Settings._across_sections`);
- OpenRouter is asked to route only to providers that keep nothing (`provider.zdr`,
  `provider.data_collection: deny`), merged into the client's own `provider` object.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import orjson

from sidecar.call import Call

WITHHELD = "<message withheld: zero data retention>"
OPENROUTER_POLICY = {"data_collection": "deny", "zdr": True}


def is_openrouter(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host == "openrouter.ai" or host.endswith(".openrouter.ai")


def openrouter_body(call: Call, model: str) -> bytes | None:
    """The request body for OpenRouter with its retention policy merged into `provider`:
    what the client set there is kept, except that ZDR cannot be turned off."""
    if call.body is None:
        return call.raw_body
    body = {**call.body, **call.overrides, "model": model}
    provider = body.get("provider")
    body["provider"] = {**(provider if isinstance(provider, dict) else {}), **OPENROUTER_POLICY}
    return orjson.dumps(body)


def format_exception(exc: BaseException) -> str:
    """A traceback with every exception message replaced by WITHHELD (frames, types and
    causes kept: enough to find the bug, nothing of the request)."""
    lines: list[str] = []
    seen: set[int] = set()
    _append(exc, lines, seen)
    return "".join(lines).rstrip("\n")


def _append(exc: BaseException, lines: list[str], seen: set[int]) -> None:
    seen.add(id(exc))
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is not None and id(cause) not in seen:
        _append(cause, lines, seen)
        lines.append("\nThe above exception led to the following exception:\n\n")
    lines.append("Traceback (most recent call last):\n")
    lines.extend(traceback.format_list(traceback.extract_tb(exc.__traceback__)))
    lines.append(f"{type(exc).__module__}.{type(exc).__qualname__}: {WITHHELD}\n")


def withhold_exception_messages(logger: Any, method: str, event: MutableMapping[str, Any]
                                ) -> MutableMapping[str, Any]:
    """A structlog processor (placed before the renderer): `exc_info` becomes `exception`,
    formatted by `format_exception`."""
    exc_info = event.pop("exc_info", None)
    if exc_info:
        exc = exception_of(exc_info)
        if exc is not None:
            event["exception"] = format_exception(exc)
    return event


def first_line_only(logger: Any, method: str, event: MutableMapping[str, Any]
                    ) -> MutableMapping[str, Any]:
    """For third-party log records: their message's first line, at most 200 characters."""
    message = event.get("event")
    if isinstance(message, str):
        event["event"] = message.split("\n", 1)[0][:200]
    return event


def route_unraisable_to_logging() -> None:
    """Python prints exceptions it cannot raise (in `__del__`, in a closed generator) straight
    to stderr, message and all; send them through logging, which withholds the message."""
    def hook(unraisable: Any) -> None:
        logging.getLogger("sidecar.unraisable").error(
            "unraisable_exception", exc_info=(unraisable.exc_type, unraisable.exc_value,
                                              unraisable.exc_traceback))

    sys.unraisablehook = hook


def exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        value: BaseException | None = exc_info[1]
        tb: TracebackType | None = exc_info[2]
        if value is not None and tb is not None and value.__traceback__ is None:
            value = value.with_traceback(tb)
        return value
    return sys.exc_info()[1]  # exc_info=True
