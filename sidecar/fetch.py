"""A JSON request to a running sidecar, for the command line (`compare`, `shadow`, `usage
--url`): the standard library's urllib, no event loop. A failure is one `Unanswered` whose
message says what happened (the status and the start of the body, or why it could not be
reached), never a traceback."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import orjson

__all__ = ["Unanswered", "fetch_json"]


class Unanswered(Exception):
    """The sidecar could not be reached, or answered with an error status."""


def fetch_json(url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
               timeout: float = 10.0) -> Any:
    """GET `url` (POST `body` when given) and the JSON it answers."""
    request = urllib.request.Request(url, data=body, headers=headers or {},
                                     method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise Unanswered(f"{url} answered {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise Unanswered(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from exc
