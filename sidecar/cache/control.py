"""What the client asks of the cache, from its request headers (INTERFACE.md §3).

    Cache-Control: no-cache          skip the lookup, store the fresh answer
    Cache-Control: no-store          neither look up nor store
    Cache-Control: max-age=N         accept a cached answer at most N seconds old
    Cache-Control: only-if-cached    504 cache_miss when there is no fresh entry
    x-sidecar-cache-ttl: SECONDS     keep this answer that long (0: do not store it)

Directive names are case-insensitive and may come in several headers or one list (RFC 9111
§5.2). Unknown directives are ignored, as caches must; a `max-age` that is not a non-negative
integer is ignored too (RFC 9111 §1.2.2). `x-sidecar-cache-ttl` is the sidecar's own header, so a
bad value is the client's mistake to hear about: 400 invalid_request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from multidict import CIMultiDictProxy

from sidecar.errors import InvalidRequest

TTL_HEADER = "x-sidecar-cache-ttl"


@dataclass(frozen=True, slots=True)
class Directives:
    no_cache: bool = False
    no_store: bool = False
    only_if_cached: bool = False
    max_age: int | None = None
    ttl: float | None = None  # seconds to keep the answer; None: cache.ttl_s


NONE = Directives()


def read_directives(headers: CIMultiDictProxy[str]) -> Directives:
    """The request's cache directives; raises InvalidRequest for a bad x-sidecar-cache-ttl."""
    controls = headers.getall("Cache-Control", None)
    ttl_value = headers.get(TTL_HEADER)
    if controls is None and ttl_value is None:
        return NONE  # the common case: two dictionary lookups
    no_cache = no_store = only_if_cached = False
    max_age = None
    for header in controls or ():
        for item in header.split(","):
            name, _, value = item.strip().partition("=")
            name = name.strip().lower()
            if name == "no-cache":
                no_cache = True
            elif name == "no-store":
                no_store = True
            elif name == "only-if-cached":
                only_if_cached = True
            elif name == "max-age":
                value = value.strip().strip('"')
                if value.isdigit():
                    age = int(value)
                    max_age = age if max_age is None else min(max_age, age)
    return Directives(no_cache, no_store, only_if_cached, max_age,
                      None if ttl_value is None else _ttl(ttl_value))


def _ttl(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidRequest(f"{TTL_HEADER} must be a number of seconds (0 or more), not "
                             f"{value[:40]!r}.")
    return seconds
