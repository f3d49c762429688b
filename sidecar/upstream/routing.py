"""Everything routing keeps for the process: providers, their breakers and averages, the router
and the retry policy, built once from the settings (`Routing.build`).

With no `providers`, `upstream` is the one provider, named "upstream", and the sidecar behaves
as the plain proxy it was: one try per request and no breaker, unless the config sets `retry:` or
`breaker:` explicitly. With `providers`, both are on with their defaults. Egress proxies are
resolved here, once per provider.

`finish` is the finisher route registers once per request: it feeds the throughput average from
the answer's usage and counts a stream the upstream broke as a failure of its provider.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sidecar.call import Call
from sidecar.config.providers import ProviderSettings
from sidecar.config.schema import Settings
from sidecar.globs import Globs
from sidecar.upstream.breaker import Breaker
from sidecar.upstream.clock import Clock, SystemClock
from sidecar.upstream.egress import egress_proxy, environment_proxies, redact
from sidecar.upstream.openrouter import is_openrouter
from sidecar.upstream.providers import make_provider
from sidecar.upstream.retry import RetryPolicy
from sidecar.upstream.targets import Router, Target


@dataclass(slots=True)
class Routing:
    targets: tuple[Target, ...]
    router: Router
    retry: RetryPolicy
    clock: Clock
    configured: bool  # `providers` is set (else the one provider is `upstream`)
    openrouter_only: bool  # one provider, on openrouter.ai: it applies models/provider itself
    settings: tuple[ProviderSettings, ...]

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None,
              environ: Mapping[str, str] | None = None,
              on_key_change: Callable[[str, int], None] | None = None) -> Routing:
        """`on_key_change(provider, index)`: a provider moved to a later key of its list."""
        clock = clock or SystemClock()
        configured = settings.providers is not None
        explicit = settings.model_fields_set
        providers = tuple(settings.providers or (_upstream_as_provider(settings),))
        proxies = environment_proxies(os.environ if environ is None else environ)
        breaker = settings.breaker
        targets = []
        for p in providers:
            proxy = egress_proxy(p.base_url, p.proxy, proxies)
            targets.append(Target(
                provider=make_provider(p, local_auth=settings.auth.required, proxy=proxy,
                                       on_key_change=on_key_change),
                patterns=tuple((pattern, Globs([pattern])) for pattern in p.models),
                weight=p.weight,
                prices=tuple((Globs([glob]), price) for glob, price in p.prices.items()),
                breaker=Breaker(breaker.failures, breaker.open_s, clock,
                                enabled=configured or "breaker" in explicit),
                proxy=proxy, strip_prefix=p.strip_prefix))
        return cls(
            targets=tuple(targets), router=Router(targets, clock),
            retry=RetryPolicy(settings.retry, enabled=configured or "retry" in explicit),
            clock=clock, configured=configured,
            openrouter_only=len(providers) == 1 and is_openrouter(providers[0].base_url),
            settings=providers)

    @property
    def passthrough_target(self) -> Target:
        """Paths without a model (files, batches, ...) go to the first provider listed."""
        return self.targets[0]

    def keep_state_of(self, previous: Routing) -> None:
        """Live reload: a provider that is still there (same name, base URL and format) keeps
        its breaker's state and its averages; a new or changed one starts fresh."""
        before = {(t.name, p.base_url, p.format): t
                  for t, p in zip(previous.targets, previous.settings, strict=True)}
        for target, p in zip(self.targets, self.settings, strict=True):
            old = before.get((target.name, p.base_url, p.format))
            if old is not None:
                target.breaker.keep_state_of(old.breaker)
                target.stats = old.stats
                keys, before_keys = target.provider.keys, old.provider.keys
                if keys is not None and before_keys is not None:
                    keys.keep_position_of(before_keys)

    def target(self, name: str) -> Target | None:
        for target in self.targets:
            if target.name == name:
                return target
        return None

    def finish(self, call: Call) -> None:
        """A finisher: what the finished answer teaches about its provider."""
        if not call.attempts:
            return
        last = call.attempts[-1]
        target = self.target(last.provider)
        if target is None:
            return
        if last.ended is None and 0 < last.status < 400:  # a stream: route left it to us
            if call.outcome == "upstream_broke":
                target.breaker.failure()
                target.stats.failed(last.model)
                return
            target.breaker.success()  # complete, or the client left: the provider worked
        usage = call.answer.usage
        if call.outcome != "ok" or usage is None or not 200 <= last.status < 300:
            return
        end = last.ended if last.ended is not None else time.monotonic()
        # A stream's tokens arrive after its first byte; a whole answer was generated before
        # its headers, so its speed is over the whole exchange.
        start = last.headers_at if call.stream and last.headers_at is not None else last.started
        target.stats.throughput(last.model, usage.completion_tokens, end - start,
                                self.clock.now())

    def snapshot(self) -> list[dict[str, Any]]:
        """Each provider's health, breaker and averages (GET /sidecar/providers)."""
        now = self.clock.now()
        out = []
        for target, p in zip(self.targets, self.settings, strict=True):
            breaker = target.breaker
            models = {}
            for model, stats in target.stats.models.items():
                ttfb, speed = stats.ttfb_s.current(now), stats.tokens_per_s.current(now)
                models[model] = {
                    "ttfb_ms": None if ttfb is None else round(ttfb * 1000, 1),
                    "tokens_per_s": None if speed is None else round(speed, 1),
                    "ttfb_samples": stats.ttfb_s.samples,
                    "throughput_samples": stats.tokens_per_s.samples,
                    "successes": stats.successes, "failures": stats.failures}
            out.append({
                "name": target.name, "base_url": p.base_url, "format": p.format,
                "models": list(p.models), "weight": p.weight, "strip_prefix": p.strip_prefix,
                "proxy": redact(target.proxy),
                "healthy": breaker.state == "closed",
                "breaker": {"enabled": breaker.enabled, "state": breaker.state,
                            "consecutive_failures": breaker.failures,
                            "retry_in_s": round(breaker.retry_in(), 3)},
                "averages": models})
        return out


def _upstream_as_provider(settings: Settings) -> ProviderSettings:
    upstream = settings.upstream
    # Already validated as UpstreamSettings (and "demo" is replaced by a URL before start-up).
    return ProviderSettings.model_construct(name="upstream", base_url=upstream.url,
                                            api_key=upstream.api_key, headers=upstream.headers)
