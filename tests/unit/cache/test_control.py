"""cache/control.py: Cache-Control and x-sidecar-cache-ttl as the stage reads them."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from sidecar.cache.control import NONE, Directives, read_directives
from sidecar.errors import InvalidRequest


def read(*pairs: tuple[str, str]) -> Directives:
    return read_directives(CIMultiDictProxy(CIMultiDict(pairs)))


@pytest.mark.parametrize(("headers", "expected"), [
    ((), NONE),
    ((("Cache-Control", "no-cache"),), Directives(no_cache=True)),
    ((("cache-control", "No-Store"),), Directives(no_store=True)),
    ((("Cache-Control", "max-age=60, only-if-cached"),),
     Directives(only_if_cached=True, max_age=60)),
    ((("Cache-Control", "max-age=60"), ("Cache-Control", "max-age=10")),
     Directives(max_age=10)),
    ((("Cache-Control", 'max-age="5"'),), Directives(max_age=5)),
    ((("Cache-Control", "max-age=soon, max-stale, private"),), NONE),
    ((("Cache-Control", "max-age=-1"),), NONE),
    ((("x-sidecar-cache-ttl", "90"),), Directives(ttl=90)),
    ((("x-sidecar-cache-ttl", "0.5"),), Directives(ttl=0.5)),
], ids=["none", "no-cache", "no-store case", "list", "two headers", "quoted",
        "unknown and bad ignored", "negative ignored", "ttl", "fractional ttl"])
def test_directives(headers: tuple[tuple[str, str], ...], expected: Directives) -> None:
    """Each header form reads as the directive it names; unknown or malformed standard
    directives are ignored."""
    assert read(*headers) == expected


@pytest.mark.parametrize("value", ["x", "-5", "nan", "inf", ""])
def test_a_bad_ttl_is_refused(value: str) -> None:
    """x-sidecar-cache-ttl that is not a finite, non-negative number is InvalidRequest."""
    with pytest.raises(InvalidRequest, match="x-sidecar-cache-ttl"):
        read(("x-sidecar-cache-ttl", value))
