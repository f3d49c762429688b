"""Reports: GET /sidecar/usage by every dimension and window, GET /sidecar/budgets, and the
`llm-sidecar usage` command reading the ledger file (or a running sidecar's admin API)."""

from __future__ import annotations

import asyncio
import calendar
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from tests.conftest import RunningSidecar, StartSidecar
from tests.fakes.metered import Metered
from tests.fakes.profiles import ALL, fresh
from tests.fakes.redis import RedisServer
from tests.fakes.spend import Clock, flush, get_json, ledger_of

PROFILES = ALL  # each test runs in the module, defaults and everything profiles

BIN = str(Path(sys.executable).with_name("llm-sidecar"))
PRICES = {"a/*": {"prompt": 0, "completion": 1e-6}, "b/*": {"prompt": 0, "completion": 2e-6}}
KEYS = [{"name": "team-a", "token": "tok-a", "tags": ["batch"]},
        {"name": "team-b", "token": "tok-b"}]
T0 = calendar.timegm(time.strptime("2026-11-18T10:20:30Z", "%Y-%m-%dT%H:%M:%SZ"))

# The cache off in the module profile (start_sidecar merges SIDECAR_BASE under each config):
# each request must be billed (a hit costs 0); in the others each sends a prompt of its own.
SIDECAR_BASE = {"cache": {"backend": "off"}}


@pytest.fixture
async def reported(start_sidecar: StartSidecar, metered: Metered) -> RunningSidecar:
    """A sidecar that served: team-a (tag batch) 2 x a/one, team-b as user u1 1 x b/two (tag
    x), all at T0; and 1 x a/one by team-b an hour earlier."""
    sidecar = await start_sidecar({
        "upstream": {"url": metered.url}, "auth": {"required": True, "keys": KEYS},
        "spend": {"prices": PRICES, "budgets": [
            {"name": "daily", "limit_usd": 1}, {"name": "per-key", "scope": "key",
                                                "window": "month", "limit_usd": 0.5}]}})
    clock = Clock(T0 - 3600)
    ledger_of(sidecar).clock = clock
    await send(sidecar, "tok-b", "a/one")
    clock.now = T0
    await send(sidecar, "tok-a", "a/one")
    await send(sidecar, "tok-a", "a/one")
    await send(sidecar, "tok-b", "b/two", user="u1", tags="x")
    await flush(sidecar)
    return sidecar


async def send(sidecar: RunningSidecar, token: str, model: str, user: str | None = None,
               tags: str = "") -> None:
    headers = {"Authorization": f"Bearer {token}", "x-sidecar-tags": tags}
    if user:
        headers["x-sidecar-user"] = user
    async with aiohttp.ClientSession() as session, session.post(
            sidecar.v1 + "/chat/completions", headers=headers, json={
                "model": model, "messages": [{"role": "user", "content": fresh("x")}],
                "max_tokens": 10}) as response:
        assert response.status == 200


def summary(report: dict[str, Any]) -> dict[Any, tuple[int, float]]:
    return {row["key"]: (row["requests"], round(row["cost_usd"] * 1e6, 3))
            for row in report["rows"]}


@pytest.mark.parametrize(("window", "by", "expected"), [
    ("day", "model", {"a/one": (3, 30.0), "b/two": (1, 20.0)}),
    ("hour", "model", {"a/one": (2, 20.0), "b/two": (1, 20.0)}),
    ("all", "key", {"team-a": (2, 20.0), "team-b": (2, 30.0)}),
    ("day", "user", {"u1": (1, 20.0), None: (3, 30.0)}),
    ("week", "tag", {"batch": (2, 20.0), "x": (1, 20.0)}),
    ("month", "provider", {"upstream": (4, 50.0)}),
], ids=lambda v: str(v) if isinstance(v, str) else "")
async def test_usage_by_every_dimension_and_window(reported: RunningSidecar, window: str,
                                                   by: str, expected: dict[Any, Any]) -> None:
    """GET /sidecar/usage groups the ledger's rows of the current UTC window by one
    dimension, dearest first, with totals that count each request once."""
    report = await get_json(f"{reported.url}/sidecar/usage?window={window}&by={by}")
    assert (report["window"], report["by"]) == (window, by)
    assert summary(report) == expected
    assert [r["cost_usd"] for r in report["rows"]] == sorted(
        (r["cost_usd"] for r in report["rows"]), reverse=True)
    total = 3 if window == "hour" else 4
    assert report["total_requests"] == total
    assert report["rows"][0]["prompt_tokens"] > 0 and report["rows"][0]["cache_hits"] == 0


async def test_usage_window_starts_on_the_calendar(reported: RunningSidecar) -> None:
    """`since` is the start of the current UTC window: Monday for a week, the 1st for a month."""
    since = {w: (await get_json(f"{reported.url}/sidecar/usage?window={w}"))["since"]
             for w in ("minute", "hour", "day", "week", "month", "all")}
    assert since == {"minute": "2026-11-18T10:20:00Z", "hour": "2026-11-18T10:00:00Z",
                     "day": "2026-11-18T00:00:00Z", "week": "2026-11-16T00:00:00Z",
                     "month": "2026-11-01T00:00:00Z", "all": "1970-01-01T00:00:00Z"}


@pytest.mark.parametrize("query", ["window=fortnight", "by=colour"])
async def test_usage_rejects_unknown_query_values(reported: RunningSidecar, query: str) -> None:
    """An unknown window or dimension is 400 invalid_request naming the allowed values."""
    async with aiohttp.ClientSession() as session, session.get(
            f"{reported.url}/sidecar/usage?{query}") as response:
        assert response.status == 400
        error = orjson.loads(await response.read())["error"]
    assert error["code"] == "invalid_request" and "must be one of" in error["message"]


async def test_budgets_report(reported: RunningSidecar) -> None:
    """GET /sidecar/budgets: each budget's limit, spent, remaining and reset time, per scope
    value for scoped budgets."""
    budgets = {b["name"]: b for b in (await get_json(
        reported.url + "/sidecar/budgets"))["budgets"]}
    daily = budgets["daily"]
    assert {k: daily[k] for k in ("scope", "window", "action", "limit_usd", "since",
                                  "resets_at")} == {
        "scope": "global", "window": "day", "action": "block", "limit_usd": 1.0,
        "since": "2026-11-18T00:00:00Z", "resets_at": "2026-11-19T00:00:00Z"}
    assert round(daily["spent_usd"] * 1e6) == 50
    per_key = budgets["per-key"]
    assert [(e["value"], round(e["spent_usd"] * 1e6)) for e in per_key["entries"]] == [
        ("team-a", 20), ("team-b", 30)]
    assert round(per_key["remaining_usd"], 6) == 0.49997  # the tightest key's room


async def test_reports_when_spend_is_off(start_sidecar: StartSidecar) -> None:
    """With spend.ledger off there is no ledger: the report routes say so with 404."""
    sidecar = await start_sidecar({"spend": {"ledger": "off"}})
    async with aiohttp.ClientSession() as session:
        for route in ("/sidecar/usage", "/sidecar/budgets"):
            async with session.get(sidecar.url + route) as response:
                assert response.status == 404


async def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        BIN, "usage", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})})
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_json_is_the_api_object(reported: RunningSidecar, tmp_path: Path) -> None:
    """`llm-sidecar usage --json` prints what GET /sidecar/usage answers, reading the ledger
    file directly (with --config) or the admin API (with --url)."""
    config = tmp_path / "sidecar.yaml"
    config.write_text(yaml.safe_dump({"state_dir": str(tmp_path)}))
    api = await get_json(f"{reported.url}/sidecar/usage?window=all&by=key")
    code, out, _ = await cli("--window", "all", "--by", "key", "--json", "--config",
                             str(config))
    assert code == 0 and orjson.loads(out) == api
    code, out, _ = await cli("--window", "all", "--by", "key", "--json", "--url", reported.url)
    assert code == 0 and orjson.loads(out) == api


async def test_cli_table(reported: RunningSidecar, tmp_path: Path) -> None:
    """Without --json the report is a readable table: a row per key, costs, a total line."""
    code, out, _ = await cli("--window", "all", "--by", "model",
                             env={"SIDECAR_STATE_DIR": str(tmp_path)})
    assert code == 0
    lines = out.splitlines()
    assert "Spend in total, by model" in lines[0]
    assert any("a/one" in line and "0.00003" in line for line in lines)
    assert any("b/two" in line and "0.00002" in line for line in lines)
    assert any("total" in line and "0.00005" in line and " 4 " in line for line in lines)


async def test_cli_without_a_ledger(tmp_path: Path) -> None:
    """Before the sidecar ever ran there is no ledger file: exit 1 and a sentence saying so."""
    code, out, err = await cli(env={"SIDECAR_STATE_DIR": str(tmp_path / "empty")})
    assert (code, out) == (1, "")
    assert "no ledger at" in err and "creates it when it starts" in err


async def test_cli_reads_a_redis_ledger(start_sidecar: StartSidecar, metered: Metered,
                                        redis_server: RedisServer, tmp_path: Path) -> None:
    """With `spend.ledger: redis://…` the command reads the shared ledger's report sums: the
    same object as the API of any replica."""
    config = {"upstream": {"url": metered.url}, "spend": {
        "ledger": redis_server.url, "prices": PRICES}}
    sidecar = await start_sidecar(config)
    for model in ("a/one", "b/two", "a/one"):
        async with aiohttp.ClientSession() as session, session.post(
                sidecar.v1 + "/chat/completions", json={"model": model, "max_tokens": 10,
                                                         "messages": [{"role": "user",
                                                                       "content": fresh()}]}
        ) as response:
            assert response.status == 200
    api = await get_json(f"{sidecar.url}/sidecar/usage?window=day&by=model")
    assert summary(api) == {"a/one": (2, 20.0), "b/two": (1, 20.0)}
    path = tmp_path / "redis.yaml"
    path.write_text(yaml.safe_dump({"spend": {"ledger": redis_server.url}}))
    code, out, _ = await cli("--json", "--config", str(path))
    assert code == 0 and orjson.loads(out) == api
