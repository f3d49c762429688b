"""OpenRouter's provider preferences (the body's `provider` object) and routing suffixes.

Parsed once per request by the fallback stage into a `Preferences` the router reads. Fields that
only mean something on OpenRouter's own marketplace (`data_collection`, `zdr`, `quantizations`,
`require_parameters`, ...) are accepted and ignored for local providers. A field of the wrong
type is a 400 `invalid_request` naming it (`param: "provider.sort"`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from sidecar.errors import InvalidRequest

Sort = Literal["price", "latency", "throughput"]
SORTS: tuple[Sort, ...] = ("price", "latency", "throughput")
SUFFIXES: dict[str, Sort] = {"floor": "price", "nitro": "throughput"}
PER_MILLION = 1_000_000  # max_price is in USD per million tokens; prices are USD per token


@dataclass(frozen=True, slots=True)
class Preferences:
    order: tuple[str, ...] = ()  # provider names, lower-cased
    only: frozenset[str] | None = None
    ignore: frozenset[str] = frozenset()
    allow_fallbacks: bool = True
    sort: Sort | None = None
    max_prompt: float | None = None  # USD per token
    max_completion: float | None = None

    def with_sort(self, sort: Sort | None) -> Preferences:
        return self if sort is None or sort == self.sort else replace(self, sort=sort)


NO_PREFERENCES = Preferences()


def split_suffix(model: str) -> tuple[str, Sort | None]:
    """`"m:free:nitro"` → `("m:free", "throughput")`: routing suffixes are removed (catalog ones
    such as `:free` stay); when several are chained, the last one wins."""
    sort: Sort | None = None
    while True:
        base, colon, suffix = model.rpartition(":")
        if not colon or not base or suffix not in SUFFIXES:
            return model, sort
        if sort is None:
            sort = SUFFIXES[suffix]
        model = base


def parse_preferences(value: Any) -> Preferences:
    """The body's `provider` object, checked."""
    if value is None:
        return NO_PREFERENCES
    if not isinstance(value, dict):
        raise _bad("provider", "must be an object")
    sort: Sort | None = value.get("sort")
    if isinstance(sort, dict):  # OpenRouter's {"by": ..., "partition": ...}
        sort = sort.get("by")
    if sort is not None and sort not in SORTS:
        raise _bad("provider.sort", "must be one of price, latency, throughput")
    allow = value.get("allow_fallbacks", True)
    if not isinstance(allow, bool):
        raise _bad("provider.allow_fallbacks", "must be true or false")
    only = value.get("only")
    prompt, completion = _max_price(value.get("max_price"))
    return Preferences(
        order=tuple(_names(value.get("order"), "provider.order")),
        only=None if only is None else frozenset(_names(only, "provider.only")),
        ignore=frozenset(_names(value.get("ignore"), "provider.ignore")),
        allow_fallbacks=allow, sort=sort,
        max_prompt=prompt, max_completion=completion,
    )


def _names(value: Any, param: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(param, "must be a list of provider names")
    return [v.lower() for v in value]


def _max_price(value: Any) -> tuple[float | None, float | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise _bad("provider.max_price", "must be an object like {\"prompt\": 1, "
                   "\"completion\": 2} (USD per million tokens)")
    out: list[float | None] = []
    for key in ("prompt", "completion"):
        limit = value.get(key)
        if limit is None:
            out.append(None)
        elif isinstance(limit, (int, float)) and not isinstance(limit, bool) and limit >= 0:
            out.append(limit / PER_MILLION)
        else:
            raise _bad(f"provider.max_price.{key}", "must be a number of USD per million "
                       "tokens, 0 or more")
    return out[0], out[1]


def _bad(param: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"'{param}' {problem}.", param=param)
