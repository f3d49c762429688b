"""Profiles: the configurations an end-to-end suite runs in (issue 25).

A feature tested only with the others off hides the bugs that live where features meet, so a
suite that sets `PROFILES = ALL` at module level runs each of its tests three times, with the
profile in the test id (`test_x[everything]`):

- `module`: as the module says: its `SIDECAR_BASE` (e.g. the cache off) under every config,
  and no price fetch at start (one less request in `upstream.requests`).
- `defaults`: what a user who writes no config gets: the module's SIDECAR_BASE dropped, so the
  memory cache, Prometheus metrics, the inspector, the SQLite spend ledger and the price fetch
  from the upstream's GET /models are all on.
- `everything`: the defaults plus spend with prices and a large blocking budget, redaction in
  pseudonymize mode, telemetry (traces, metrics, logs) exported to a live OTLP/HTTP receiver,
  and routing with two providers: `upstream` (the test's own fake upstream, under the name the
  sidecar gives it when no providers are listed, with its key and headers) serving every model,
  and `spare` (a fake of its own) serving `spare/*`, with one attempt per request as without
  providers (unless the test configures `retry`). The test's own config is merged on top: a
  test that lists its own providers, prices or exporters keeps exactly those.

`Profile.config` builds the whole config, so tests that start their own process or stack use
the same profiles as `start_sidecar`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from tests.fakes.otlp import HttpReceiver
from tests.fakes.upstream import FakeUpstream

__all__ = ["ALL", "BUDGET", "PRICE", "Profile", "fresh", "merge"]

ALL = ("module", "defaults", "everything")
PRICE = {"prompt": 1e-6, "completion": 2e-6}  # USD per token, every model
BUDGET = {"name": "profile-cap", "limit_usd": 1_000_000, "action": "block"}
_prompts = itertools.count(1)


def fresh(text: str = "hi") -> str:
    """`text` made unlike any prompt sent before in this process, so the cache (on in the
    defaults and everything profiles) cannot answer it: for tests about something else that
    need each request to reach the upstream. The mark is letters of a fixed width: every fresh
    prompt of one text has the same size (the spend tests' reservations depend on it) and
    nothing a redactor takes for a number."""
    n, mark = next(_prompts), ""
    for _ in range(5):
        n, letter = divmod(n, 26)
        mark = chr(ord("a") + letter) + mark
    return f"{text} (request {mark})"


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` over `base`, nested dicts merged key by key; anything else replaced."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


@dataclass
class Profile:
    name: str
    receiver: HttpReceiver | None = None  # everything: the live OTLP receiver
    spare: FakeUpstream | None = None  # everything: the second provider

    def __str__(self) -> str:
        return self.name

    def config(self, upstream_url: str, state_dir: str, test: dict[str, Any] | None = None,
               module_base: dict[str, Any] | None = None) -> dict[str, Any]:
        """The whole config of a sidecar whose upstream is `upstream_url`: the profile's
        settings, then the test's own `test` config on top (`module_base` under it, in the
        module profile only)."""
        test = test or {}
        base: dict[str, Any] = {"upstream": {"url": upstream_url}, "state_dir": state_dir}
        if self.name == "module":
            return merge(merge(merge(base, {"spend": {"fetch_prices": False}}),
                               module_base or {}), test)
        if self.name == "defaults":
            return merge(base, test)
        return self._everything(base, test)

    def _everything(self, base: dict[str, Any], test: dict[str, Any]) -> dict[str, Any]:
        assert self.receiver is not None and self.spare is not None
        features = {
            "spend": {"prices": {"*": PRICE}, "budgets": [BUDGET]},
            "privacy": {"redact": {"mode": "pseudonymize"}},
            "telemetry": {"prometheus": True, "exporters": [
                {"protocol": "http", "endpoint": self.receiver.endpoint}]},
            "admin": {"ui": True},
        }
        config = merge(merge(base, features), test)
        spend = test.get("spend", {})
        if "prices" in spend:  # the test's prices, exactly: no catch-all price beside them
            config["spend"]["prices"] = spend["prices"]
        upstream = config["upstream"]
        if "providers" not in test and upstream["url"] != "demo":
            # one try, as without providers, unless the test says otherwise
            config["retry"] = merge({"attempts": 1}, config.get("retry", {}))
            config["providers"] = [
                {"name": "upstream", "base_url": upstream["url"],
                 "api_key": upstream.get("api_key"), "headers": upstream.get("headers", {})},
                {"name": "spare", "base_url": self.spare.url, "models": ["spare/*"]},
            ]
        return config
