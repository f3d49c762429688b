"""What a call that raised answers, the same for a client's request (handler.py) and a compare
or shadow model call (compare/consume.py): 400 when its body is nested deeper than the stages
can handle (MAX_DEPTH: checked here, after the fact, to keep it off the hot path), else a 500
naming the request id, with the traceback logged under that id."""

from __future__ import annotations

from typing import Any

import structlog

from sidecar.call import Call
from sidecar.errors import InternalError, InvalidRequest, SidecarError

__all__ = ["MAX_DEPTH", "failed", "internal_error", "too_deep"]

# orjson reads 1,024 levels but writes only 254 (the cache key and an edited body are written
# back), and the cache key and redaction walk the body recursively: a body 255 to 1,024 levels
# deep once ended in a 500. Checking every body's depth here would cost 1 to 4 µs a request
# (two bytes.count over 1-8 KB, or a walk), so it is checked only when a request
# failed with an exception, and answers this 400 when depth was the cause (`too_deep`). Real
# requests nest tool schemas a few dozen levels at most.
MAX_DEPTH = 128
_CONTAINERS = (dict, list)
_log = structlog.get_logger("sidecar.handler")


def failed(call: Call) -> SidecarError:
    """Called from an `except` block: the error the raised call answers."""
    if call.body is not None and (error := too_deep(call.body)) is not None:
        return error
    _log.exception("unhandled_error", request_id=call.request_id)
    return internal_error(call)


def internal_error(call: Call) -> InternalError:
    return InternalError(f"The sidecar failed unexpectedly; its log has the details under "
                         f"request id {call.request_id}.")


def too_deep(body: dict[str, Any]) -> InvalidRequest | None:
    """The 400 for a body with a container more than MAX_DEPTH levels below the top, else
    None. Level by level over the containers only, without recursion."""
    level: list[dict[str, Any] | list[Any]] = [body]
    for _ in range(MAX_DEPTH):
        below: list[dict[str, Any] | list[Any]] = []
        for value in level:
            children = value.values() if isinstance(value, dict) else value
            below += [v for v in children if type(v) in _CONTAINERS]
        if not below:
            return None
        level = below
    return InvalidRequest(f"The request body is nested more than {MAX_DEPTH} levels deep; "
                          "flatten it.")
