"""Zero data retention in the logs: no content at any level, ours or a library's.

In ZDR mode (`privacy.zdr`) a prompt goes to the upstream and the answer to the client, and
nowhere else. For the logs (stdout lines and OTLP log records alike) that means: exception
*messages* are withheld from tracebacks (a bug could raise `KeyError(<a piece of the prompt>)`),
and third-party log records keep only the first line of their message (asyncio's "Task
exception was never retrieved" is followed by a repr of the exception). The other ZDR rules
(no content capture in spans, no Redis or unallowed memory cache) are refused at start by
`Settings._across_sections`; OpenRouter's retention policy is in upstream/openrouter.py.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any

WITHHELD = "<message withheld: zero data retention>"


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
