"""A provider's API keys, in order: the first is used; a later one when the upstream refuses it.

`api_key` may be a list (`providers[].api_key`, `upstream.api_key`) so that a key can be rotated
without a restart or an outage: put the new key after the old one, reload, revoke the old key at
the provider, and remove it in a later reload. While the current key works, the others are
never sent. When the upstream answers 401 or 403 for the current key, route tries the same
request once more with the next key (a passthrough request only when it has no body to
replay), and that key stays current for every later request: `llm_sidecar_provider_key_index`
says which key of the list is in use (above 0: a stale key is still configured first), and one
warning line says so. A list whose every key is refused leaves the last one current, and the
upstream's own 401/403 reaches the client.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

__all__ = ["KeyRing"]

_log = structlog.get_logger("sidecar.upstream.keys")
REFUSED = frozenset({401, 403})


class KeyRing:
    __slots__ = ("_index", "_keys", "_on_change", "provider")

    def __init__(self, provider: str, keys: Sequence[str],
                 on_change: Callable[[str, int], None] | None = None) -> None:
        assert keys, "a key ring needs a key"
        self.provider = provider
        self._keys = tuple(keys)
        self._index = 0
        self._on_change = on_change  # (provider, index): the metric

    @property
    def current(self) -> str:
        return self._keys[self._index]

    @property
    def index(self) -> int:
        return self._index

    def keep_position_of(self, previous: KeyRing) -> None:
        """Live reload: the same list keeps using the key it had moved to."""
        if previous._keys == self._keys:
            self._index = previous._index

    def refused(self, key: str) -> bool:
        """The upstream refused `key`: move past it when it is still the current one and
        another follows. True when the caller should try again (with `current`)."""
        if key != self.current:
            return True  # another request moved on already: try the current one
        if self._index + 1 >= len(self._keys):
            return False
        self._index += 1
        _log.warning("provider_key_refused", provider=self.provider, now_using=self._index,
                     keys=len(self._keys),
                     note="the upstream refused a configured key; a later one of the list is "
                          "in use: remove the refused key from the config")
        if self._on_change is not None:
            self._on_change(self.provider, self._index)
        return True
