"""Sticky pools: a conversation stays on the provider that holds its prompt cache.

A weighted pool (providers sharing one glob, targets.py) draws every request by weight, so the
turns of one conversation would alternate between providers and each turn would find a cold
cache. Here a pin, (conversation, model) → provider, is set when an answer shows that
provider's cache at work (`cache_write_tokens` or `cached_tokens` > 0), or on any success when
the client named the conversation (`session_id` / `x-session-id`, as OpenRouter pins), and
lasts `prompt_cache.sticky_idle_s` after the conversation's last request there. The pinned
provider is tried first while it is in the pool and its breaker is closed; otherwise the pin
is dropped and the request is drawn by weight like any other. A try on the pinned provider
that fails (an error, or a stream it broke) releases the pin; the provider that then answers is
pinned in its place when its answer shows a cache. Weights still hold across conversations:
only a conversation's first request (and one after a release) is drawn.

Not sticky: a request whose `provider` preferences set `order` or `sort` (the client chose,
and OpenRouter does the same), a model one provider serves alone, an endpoint without turns.

Memory is bounded: at most `prompt_cache.sticky_max_conversations` pins, the least recently
used dropped first. Time is the routing clock's (tests move it to expire pins).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from sidecar.call import Call
from sidecar.upstream.clock import Clock
from sidecar.upstream.conversation import conversation_key, session_id
from sidecar.upstream.targets import Target

PinKey = tuple[str, str]  # (conversation, model)


class Sticky:
    def __init__(self, idle_s: float, max_pins: int, clock: Clock) -> None:
        self.idle_s = idle_s
        self.max_pins = max_pins
        self._clock = clock
        self._pins: OrderedDict[PinKey, tuple[str, float]] = OrderedDict()  # → (provider, used)

    def __len__(self) -> int:
        return len(self._pins)

    def order(self, call: Call, model: str, pool: Sequence[Target],
              targets: Sequence[Target]) -> Sequence[Target]:
        """`targets` (the router's order for `model`, `pool` its primary pool of two or more)
        with the conversation's pinned provider first, when it can be."""
        prefs = call.preferences
        if prefs is not None and (prefs.order or prefs.sort is not None):
            return targets
        key = conversation_key(call)
        if key is None:
            return targets
        if self.finish not in call.finishers:  # once per Call, whichever candidate model
            call.finishers.append(self.finish)
        pin_key = (key, model)
        pin = self._pins.get(pin_key)
        if pin is None:
            return targets
        name, used = pin
        if self._clock.now() - used > self.idle_s:
            del self._pins[pin_key]
            return targets
        pinned = next((t for t in pool if t.name == name), None)
        if pinned is None or pinned not in targets:  # left the pool, or the client excluded it
            return targets
        if pinned.breaker.state != "closed":  # failing: released, drawn by weight instead
            del self._pins[pin_key]
            return targets
        if targets[0] is pinned:
            return targets
        return [pinned, *(t for t in targets if t is not pinned)]

    def finish(self, call: Call) -> None:
        """A finisher: what the answer says about where the conversation's cache is."""
        attempts = call.attempts
        key = call.conversation
        if not attempts or not key:
            return
        last = attempts[-1]
        pin_key = (key, last.model)
        pin = self._pins.get(pin_key)
        pinned = pin[0] if pin is not None else None
        if pinned is not None:
            tried = [a for a in attempts if a.provider == pinned and a.model == last.model]
            if tried:
                tried[0].sticky = True
            if any(a.error is not None for a in tried) or (
                    last.provider == pinned and call.outcome == "upstream_broke"):
                del self._pins[pin_key]  # released: re-pinned below where it landed, if cached
                pinned = None
        if call.outcome != "ok" or not 200 <= last.status < 300:
            return
        usage = call.answer.usage
        cached = usage is not None and (usage.cached_tokens > 0 or usage.cache_write_tokens > 0)
        if cached or last.provider == pinned or session_id(call) is not None:
            self._pin(pin_key, last.provider)

    def keep_pins_of(self, previous: Sticky) -> None:
        """Live reload: the same table (requests still finishing on the old routing pin into
        it too), trimmed to this one's bound."""
        self._pins = previous._pins
        while len(self._pins) > self.max_pins:
            self._pins.popitem(last=False)

    def _pin(self, key: PinKey, provider: str) -> None:
        pins = self._pins
        pins[key] = (provider, self._clock.now())
        pins.move_to_end(key)
        if len(pins) > self.max_pins:
            pins.popitem(last=False)

    def pinned_to(self, provider: str) -> int:
        """How many conversations are pinned to `provider` now (GET /sidecar/providers)."""
        now = self._clock.now()
        return sum(1 for name, used in self._pins.values()
                   if name == provider and now - used <= self.idle_s)
