"""A provider's key ring: the first key until it is refused, then the next, once each."""

from __future__ import annotations

from sidecar.config.base import empty_is_none, secret_values
from sidecar.config.providers import ProviderSettings
from sidecar.upstream.keys import KeyRing


def test_a_refused_key_moves_the_ring_on_once_and_tells() -> None:
    """Refusing the current key moves to the next and says so; refusing a key already left
    behind (another request's) only asks to try the current one; the last key stays."""
    changes: list[tuple[str, int]] = []
    ring = KeyRing("p", ["a", "b"], lambda provider, index: changes.append((provider, index)))
    assert ring.current == "a"
    assert ring.refused("a") is True and ring.current == "b"
    assert ring.refused("a") is True and ring.current == "b"  # a stale request: retry with b
    assert ring.refused("b") is False and ring.current == "b"  # nothing after b
    assert changes == [("p", 1)]


def test_a_reload_with_the_same_list_keeps_the_position() -> None:
    """The same keys keep the key in use; another list starts from its first key."""
    before = KeyRing("p", ["a", "b"])
    before.refused("a")
    same, other = KeyRing("p", ["a", "b"]), KeyRing("p", ["b", "c"])
    same.keep_position_of(before)
    other.keep_position_of(before)
    assert (same.current, other.current) == ("b", "b")
    assert other.index == 0


def test_api_key_takes_one_key_or_a_list_and_drops_empty_ones() -> None:
    """`api_key` is one secret or a list; empty values (unset variables) are dropped, and a
    list left empty means no key."""
    one = ProviderSettings(name="p", base_url="http://x", api_key="k")  # type: ignore[arg-type]
    many = ProviderSettings(name="p", base_url="http://x",
                            api_key=["", "k1", "k2"])  # type: ignore[arg-type]
    none = ProviderSettings(name="p", base_url="http://x", api_key=["", ""])  # type: ignore[arg-type]
    assert secret_values(one.api_key) == ["k"]
    assert secret_values(many.api_key) == ["k1", "k2"]
    assert none.api_key is None and empty_is_none("") is None
