"""The shared ledger (`spend.ledger: redis://…`): replicas share budgets and rate limits.

Admission is one Lua script run (redis_scripts.ADMIT): atomic in Redis, so replicas racing for
the last dollar of a budget never overshoot it together. Settlements and rows are queued by
the requests' finishers and sent by one background task every `spend.flush_interval_s`, in one
transaction (MULTI/EXEC, and once more at close); redis_rows.py has the rows and the report sums.

Each batch is applied exactly once. A batch whose answer does not come back in time may still
have been applied (Redis was slow, or this process's event loop lagged past the timeout: the
rows were then written twice and the settlements counted twice). So a batch is one
transaction that also sets a guard key of its own; a batch in doubt is sent again only when
its guard is absent, and the guard of a batch known applied is deleted with the next one.

Redis slower than `spend.redis_timeout_s`, or down, starts an outage: logged once, counted in
`llm_sidecar_ledger_errors_total`; while it lasts requests are refused (503, fail_closed) or
served unguarded (fail_open) at once, without waiting on Redis each time; the background task
pings Redis every interval and ends the outage when it answers. Queued settlements and rows
wait (bounded by `spend.max_pending_rows`); a hold whose settlement is lost expires on its own.
While a request waits for held money to settle (`wait_for_room`), settlements are sent at once
rather than at the next interval, so a burst spends its budget instead of waiting on holds.
Budgets live in Redis: keep its persistence (AOF) on if they must survive a Redis restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, RedisError

from sidecar.config.compare import shadow_budgets
from sidecar.config.schema import Settings
from sidecar.config.spend import Budget, SpendSettings
from sidecar.spend.ledger import FLUSH_ROWS, LedgerDown, Row
from sidecar.spend.policy import Ask, BudgetRule, Grant, Policy, Refusal
from sidecar.spend.pricing import to_usd
from sidecar.spend.redis_rows import PREFIX, ROWS_KEPT, row_fields, sum_keys, sum_row, unpack
from sidecar.spend.redis_scripts import ADMIT, SETTLE, admit_args, limit_at
from sidecar.spend.usage import budget_view, parse_query, report
from sidecar.spend.windows import window_end, window_start
from sidecar.telemetry.metrics import Metrics

_log = structlog.get_logger("sidecar.spend.ledger")


REDIS_POOL = 32  # connections to Redis at most; more requests at once wait for one
# Opening a connection waits this long at least: a burst opens many at once, and on a busy event
# loop their completions queue behind the requests (0.5 s, the operation timeout, made a burst of
# 100 look like an outage). A Redis that refuses connections still fails at once, and once an
# outage has begun requests are answered without waiting on Redis (see the module docstring).
CONNECT_TIMEOUT_S = 2.0
_GUARD_TTL_S = 7 * 86_400  # a batch in doubt is resolved at the next flush Redis answers
_POLL_S = 0.1  # a request waiting for room asks Redis again this often (other replicas' holds)


@dataclass(slots=True)
class RedisHold:
    id: str
    budget_keys: list[str]  # hash, holds, per budget
    tpm_keys: list[tuple[str, int]]  # bucket key, capacity


Settle = tuple["RedisHold", int, int, list[int]]  # hold, held, cost, tokens given back
Charge = tuple[str, str, str, int | None, int]  # budget key, values key, value, expiry, cost


@dataclass(slots=True)
class Batch:
    guard: str  # a key set in the same transaction: present once the batch is applied
    settles: list[Settle]
    rows: list[Row]
    charges: list[Charge]


class RedisLedger:
    name = "spend ledger"

    def __init__(self, settings: Settings, metrics: Metrics, url: str,
                 clock: Callable[[], float] = time.time) -> None:
        spend = settings.spend
        self.policy = Policy(spend, shadow_budgets(settings.shadow))
        self.clock = clock
        self.url = url
        self._spend = spend
        self._metrics = metrics
        timeout = spend.redis_timeout_s
        # One immediate retry on a connection error re-opens a pooled connection that a Redis
        # restart closed: without it, each stale connection failed one request after Redis was
        # back and opened a new outage (503s under fail_closed for another interval). Timeouts
        # are not retried: that would double the wait `redis_timeout_s` bounds.
        # A blocking pool: a burst of admissions waits for a pooled connection instead of
        # failing. redis-py's default pool raises "Too many connections" past 100 at once,
        # which opened an outage (503s) under a burst of 100 requests. The wait is queueing
        # behind this process's own requests, not Redis being slow: it is bounded like opening
        # a connection (CONNECT_TIMEOUT_S), not by `redis_timeout_s`.
        self._redis = aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(
            url, max_connections=REDIS_POOL, timeout=max(timeout, CONNECT_TIMEOUT_S),
            socket_timeout=timeout,
            socket_connect_timeout=max(timeout, CONNECT_TIMEOUT_S),
            retry=Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
            decode_responses=True))
        self._admit = self._redis.register_script(ADMIT)
        self._settle = self._redis.register_script(SETTLE)
        self._settles: list[Settle] = []
        self._charges: list[Charge] = []  # see charge()
        self._rows: list[Row] = []
        self._unsure: Batch | None = None  # sent, but whether Redis applied it is unknown
        self._applied_guard: str | None = None  # the last batch's guard, deleted with the next
        self._task: asyncio.Task[None] | None = None
        self._early: asyncio.Future[None] | None = None  # a flush started by a long queue
        self._lock = asyncio.Lock()
        self._outage: str | None = None
        self._closing = False
        self._waiting = 0  # requests waiting for holds to settle (wait_for_room)
        self._room: asyncio.Future[None] | None = None  # resolved by a batch with settlements

    async def start(self) -> None:
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            self._failed("connect", exc)
        self._task = asyncio.ensure_future(self._tick_forever())

    async def close(self) -> None:
        self._closing = True  # the tick loop ends even if redis-py swallows the cancel
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            if self._early is not None:
                await self._early
            await self.flush()
            unsure = len(self._unsure.rows) if self._unsure is not None else 0
            if self._rows or self._settles or unsure:
                _log.error("ledger_rows_lost", rows=len(self._rows) + unsure,
                           reason=self._outage)
        await self._redis.aclose()

    def problem(self) -> str | None:
        if self._outage is None or self._spend.on_ledger_error == "fail_open":
            return None
        return f"spend ledger (Redis): {self._outage}"

    @property
    def healthy(self) -> bool:
        return self._outage is None

    async def admit(self, ask: Ask) -> Grant | Refusal:
        if self._outage is not None:
            raise LedgerDown(self._outage)
        keys, args, budget_keys, tpm_keys = admit_args(ask, self._spend.reservation_ttl_s)
        try:
            result = await self._admit(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            self._failed("admit", exc)
            raise LedgerDown(str(exc)) from exc
        kind = result[0]
        if kind == "budget":
            rule, value = ask.budgets[int(result[1]) - 1]
            start = window_start(rule.window, ask.now)
            return Refusal("budget", rule.name, rule.scope, value, rule.window,
                           to_usd(rule.limit), to_usd(int(result[2])),
                           window_end(rule.window, start), held=to_usd(int(result[3])),
                           held_only=result[4] == "1")
        if kind == "rate":
            limit, value, per_minute, unit = limit_at(ask, int(result[1]))
            level = float(result[2])
            return Refusal("rate", limit.name, limit.scope, value, "minute", per_minute,
                           per_minute - level, retry_after=float(result[3]), unit=unit)
        tokens, cost = int(result[1]), int(result[2])
        grant = Grant(tokens, cost, tokens < ask.want,
                      remaining=int(result[3]) if result[3] else None,
                      tpm_taken=ask.prompt_tokens + tokens * ask.choices)
        grant.warned = [ask.budgets[int(i) - 1][0].name for i in result[4].split(",") if i]
        grant.holds.append(RedisHold(args[2], budget_keys, tpm_keys))
        return grant

    async def wait_for_room(self, at_most_s: float) -> None:
        """Send this replica's queued settlements now (not at the next interval), then wait
        for the next batch this replica sends with settlements, or `_POLL_S`: another
        replica's settlements can only be seen by asking Redis again."""
        self._waiting += 1
        try:
            if self._settles and self._outage is None:
                await self.flush()
            room = self._room
            if room is None or room.done():
                room = self._room = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(room), min(at_most_s, _POLL_S))
        finally:
            self._waiting -= 1

    def settle(self, grant: Grant, cost: int, tokens: int) -> int | None:
        if self._waiting and self._early is None and self.healthy:
            # someone waits for room: this settlement goes to Redis now, not at the interval
            self._early = asyncio.ensure_future(self._flush_early())
        for hold in grant.holds:
            if isinstance(hold, RedisHold):
                back = [max(0, min(grant.tpm_taken, capacity) - tokens)
                        for _, capacity in hold.tpm_keys]
                self._settles.append((hold, grant.cost, cost, back))
        grant.holds = []
        self._trim()
        if grant.remaining is None:
            return None
        return grant.remaining + grant.cost - cost  # as this replica saw it

    def charge(self, budgets: list[tuple[BudgetRule, str]], ts: float, cost: int) -> None:
        for rule, value in budgets:
            start = window_start(rule.window, ts)
            end = window_end(rule.window, start)
            self._charges.append((f"{PREFIX}b:{rule.name}:{start}:{value}",
                                  f"{PREFIX}bv:{rule.name}:{start}", value,
                                  None if end is None else end + 60, cost))
        self._trim()

    def record(self, row: Row) -> None:
        self._rows.append(row)
        self._trim()
        if len(self._rows) >= FLUSH_ROWS and self._early is None and self.healthy:
            self._early = asyncio.ensure_future(self._flush_early())

    async def _flush_early(self) -> None:
        try:
            await self.flush()
        finally:
            self._early = None

    async def flush(self) -> None:
        async with self._lock:
            if self._outage is not None:
                return
            try:
                if (unsure := self._unsure) is not None:
                    if not await self._redis.exists(unsure.guard):
                        await self._send(unsure)  # it had not been applied: now it is
                    self._applied_guard, self._unsure = unsure.guard, None
                if not (self._settles or self._rows or self._charges):
                    return
                batch = Batch(f"{PREFIX}batch:{secrets.token_hex(8)}", self._settles,
                              self._rows, self._charges)
                self._settles, self._rows, self._charges = [], [], []
                self._unsure = batch
                await self._send(batch)
                self._applied_guard, self._unsure = batch.guard, None
                room = self._room
                if batch.settles and room is not None and not room.done():
                    room.set_result(None)
            except (RedisError, OSError) as exc:
                self._failed("write", exc)

    async def usage(self, window: str, by: str) -> dict[str, Any]:
        span, dimension = parse_query(window, by)
        await self.flush()
        now = self.clock()
        start = window_start(span, now)
        keys = sum_keys(span, start, now)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(f"{PREFIX}u:{key}:{dimension}")
                    pipe.hgetall(f"{PREFIX}u:{key}:global")
                found = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise LedgerDown(str(exc)) from exc
        tallies: dict[str, list[int]] = {}
        total: dict[str, list[int]] = {}
        for i, fields in enumerate(found):
            unpack(tallies if i % 2 == 0 else total, fields)
        return report(span, dimension, start, tallies, total.get(""))

    async def budgets(self) -> list[dict[str, Any]]:
        now = self.clock()
        out = []
        try:
            for rule in self.policy.budgets:
                start = window_start(rule.window, now)
                values = {""} if rule.scope == "global" else {
                    str(v) for v in await self._redis.smembers(f"{PREFIX}bv:{rule.name}:{start}")}
                entries = []
                for value in sorted(values):
                    spent, held = await self._redis.hmget(
                        f"{PREFIX}b:{rule.name}:{start}:{value}", ["spent", "reserved"])
                    entries.append((value, int(spent or 0), int(held or 0)))
                out.append(budget_view(rule, start, entries))
        except (RedisError, OSError) as exc:
            raise LedgerDown(str(exc)) from exc
        return out

    async def reconfigure(self, spend: SpendSettings, extra: Sequence[Budget] = ()) -> None:
        """Budgets and limits live in Redis under their names: a budget kept by name keeps
        what was spent (a new limit applies to it); one the reload adds counts from now on, as
        one added at start does (rows are not summed again)."""
        self.policy = Policy(spend, extra)

    # -- internals ----------------------------------------------------------------------------

    async def _send(self, batch: Batch) -> None:
        """One transaction: the batch and its guard (see the module docstring)."""
        settles, rows = batch.settles, batch.rows
        async with self._redis.pipeline(transaction=True) as pipe:
            if self._applied_guard is not None:
                pipe.delete(self._applied_guard)
            pipe.set(batch.guard, 1, ex=_GUARD_TTL_S)
            for budget, values, value, expire_at, cost in batch.charges:
                pipe.hincrby(budget, "spent", cost)
                pipe.sadd(values, value)
                if expire_at is not None:  # in the past (the window is over): removed at once
                    pipe.expireat(budget, expire_at)
                    pipe.expireat(values, expire_at)
            for hold, held, cost, back in settles:
                await self._settle(
                    keys=[*hold.budget_keys, *(k for k, _ in hold.tpm_keys)],
                    args=[hold.id, held, cost, len(hold.budget_keys) // 2,
                          len(hold.tpm_keys),
                          *(x for (_, c), b in zip(hold.tpm_keys, back, strict=True)
                            for x in (c, b))], client=pipe)
            sums: dict[tuple[str, int], dict[str, int]] = {}
            for row in rows:
                pipe.xadd(f"{PREFIX}rows", row_fields(row), maxlen=ROWS_KEPT, approximate=True)
                sum_row(sums, row)
            for (key, ttl), fields in sums.items():
                for field, amount in fields.items():
                    pipe.hincrby(key, field, amount)
                if ttl:
                    pipe.expire(key, ttl)
            await pipe.execute()

    async def _update_gauges(self) -> None:
        """Room left in each global budget (shared by every replica). Scoped budgets are not
        scanned here: one read per user per second would not scale; /sidecar/budgets has
        them."""
        now = self.clock()
        for rule in self.policy.budgets:
            if rule.scope == "global" and self.healthy:
                start = window_start(rule.window, now)
                spent, held = await self._redis.hmget(f"{PREFIX}b:{rule.name}:{start}:",
                                                      ["spent", "reserved"])
                self._metrics.set_budget_remaining(
                    rule.name, to_usd(rule.limit - int(spent or 0) - int(held or 0)))

    def _trim(self) -> None:
        limit = self._spend.max_pending_rows
        for queue in (self._rows, self._settles, self._charges):
            if len(queue) > limit:
                del queue[: len(queue) - limit]
                self._metrics.ledger_error("dropped")

    async def _tick_forever(self) -> None:
        # Not `while True`: a cancel that lands inside redis-py's Pipeline.execute can be
        # swallowed there (it returns normally), and the loop then ran forever, hanging close()
        # (seen 1 run in 4 of a test that kills Redis under load).
        while not self._closing:
            await asyncio.sleep(self._spend.flush_interval_s)
            try:
                if self._outage is not None:
                    await self._redis.ping()
                    _log.info("ledger_recovered", url=_safe(self.url))
                    self._outage = None
                await self.flush()
                await self._update_gauges()
            except (RedisError, OSError) as exc:
                self._failed("connect", exc)
            except Exception:  # never let the writer die
                _log.exception("ledger_tick_failed")

    def _failed(self, operation: str, exc: BaseException) -> None:
        self._metrics.ledger_error(operation)
        reason = f"cannot {operation}: {exc or type(exc).__name__}"
        if self._outage is None:
            _log.error("ledger_unavailable", url=_safe(self.url), error=reason,
                       on_ledger_error=self._spend.on_ledger_error)
        self._outage = reason


def _safe(url: str) -> str:
    """The URL without a password."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"
