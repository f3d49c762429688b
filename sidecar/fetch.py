"""The command line's side of a running sidecar (`compare`, `shadow`, `usage --url`, `auto
explain`): a JSON request with the standard library's urllib, no event loop (a failure is one
`Unanswered` whose message says what happened: the status and the start of the body, or why it
could not be reached, never a traceback), and the answer shown, as JSON or as a table."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["Unanswered", "fetch_json", "show"]


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


def show(payload: Any, as_json: bool, render: Callable[[Any], None]) -> int:
    """`payload` on stdout, one JSON line with `--json`, else as `render` draws it; exit 0."""
    if as_json:
        sys.stdout.write(orjson.dumps(payload).decode() + "\n")
    else:
        render(payload)
    return 0
