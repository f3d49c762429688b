"""The ledger seam: one row per request, budgets and rate limits, usage reports.

Two backends implement `Ledger`: SQLite (the default: embedded, one file, budgets held in this
process's memory and rebuilt from the file at start) and Redis (replicas share budgets and rate
limits through atomic Lua scripts). The spend stage speaks only this Protocol.

A row holds ids, identity, model, provider, token counts, cost and flags: never a prompt, a
completion or a key. Costs are nano-dollars (pricing.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sidecar.config.schema import Settings
from sidecar.config.spend import SpendSettings
from sidecar.spend.policy import Ask, BudgetRule, Grant, Policy, Refusal

FLUSH_ROWS = 5_000  # a queue this long is written at once, not at the next flush interval


@dataclass(slots=True)
class Row:
    ts: float  # Unix time the request was admitted: it counts in that time's windows
    request_id: str
    endpoint: str
    key_name: str | None
    user: str | None
    tags: tuple[str, ...]
    model: str | None  # the model that answered (the last candidate tried)
    requested_model: str | None
    provider: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: int = 0  # nano-dollars
    saved: int = 0  # nano-dollars a cache hit did not spend
    estimated: bool = False  # no usage came back: tokens and cost are the sidecar's bound
    capped: bool = False  # a budget lowered the completion limit, or ended the stream
    cache_hit: bool = False
    status: int = 0
    outcome: str = "ok"
    latency_ms: float = 0.0
    tier: str | None = None  # the auto router's tier (None: no router chose the model)
    baseline_cost: int | None = None  # nano-dollars the router's baseline would have cost

    @property
    def baseline_saved(self) -> int:
        """Nano-dollars saved against the baseline (0 without one; negative: it cost more)."""
        return 0 if self.baseline_cost is None else self.baseline_cost - self.cost

    def scopes(self) -> list[tuple[str, str]]:
        """(scope, value) pairs this row is reported under; "" for a missing value. A row
        is under a tier only when an auto router served it."""
        out = [("global", ""), ("key", self.key_name or ""), ("user", self.user or ""),
               ("model", self.model or ""), ("provider", self.provider or "")]
        out += [("tag", tag) for tag in dict.fromkeys(self.tags)]
        if self.tier is not None:
            out.append(("tier", self.tier))
        return out


class LedgerDown(Exception):
    """The ledger cannot admit or record right now (Redis down, disk read-only or full)."""


class Ledger(Protocol):
    name: str
    policy: Policy
    clock: Callable[[], float]  # Unix time; tests swap it to roll windows

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def problem(self) -> str | None: ...

    @property
    def healthy(self) -> bool:
        """False while rows cannot be recorded or budgets cannot be checked."""
        ...

    async def admit(self, ask: Ask) -> Grant | Refusal:
        """Atomically check and hold; raises LedgerDown."""
        ...

    async def wait_for_room(self, at_most_s: float) -> None:
        """Return when holds in flight may have settled (so an admission refused only because
        of them may now fit), or after `at_most_s` seconds at the latest."""
        ...

    def settle(self, grant: Grant, cost: int, tokens: int) -> int | None:
        """Replace the holds by the real cost (0 releases); never blocks. Returns the tightest
        budget's room left, when known."""
        ...

    def charge(self, budgets: list[tuple[BudgetRule, str]], ts: float, cost: int) -> None:
        """Count `cost` as spent in these budgets (the windows holding `ts`) for a request
        served while the ledger could not admit (fail_open): it held nothing, but once the
        ledger is back its budgets must know what it cost. Never blocks."""
        ...

    def record(self, row: Row) -> None:
        """Queue one row; written within `spend.flush_interval_s`."""
        ...

    async def flush(self) -> None: ...

    async def usage(self, window: str, by: str) -> dict[str, Any]: ...

    async def budgets(self) -> list[dict[str, Any]]: ...

    async def reconfigure(self, spend: SpendSettings) -> None:
        """Live reload: the new budgets and rate limits, with what was spent and held kept
        (see Reservations.reconfigure and each backend's note)."""
        ...


def sqlite_path(settings: Settings) -> Path | None:
    """The SQLite file of these settings, or None when the ledger is Redis or off.
    `sqlite:///var/lib/x.db` is /var/lib/x.db (the path after `sqlite://`)."""
    url = settings.spend.ledger
    if url is None:
        return settings.state_dir.expanduser() / "ledger.db"
    if url.startswith("sqlite://"):
        return Path(url[len("sqlite://"):].replace("/~", "~", 1)).expanduser()
    return None
