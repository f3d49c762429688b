"""The sidecar with every feature on, and the checks each fault test ends with.

`full_config` turns on everything at once: local keys (auth), the memory cache, spend with a
blocking budget and the SQLite ledger, telemetry exporting traces, metrics and logs to an OTLP
receiver, routing with two providers (`primary` serves `test/*`, `backup` is its fallback) and
retries, privacy in pseudonymize mode, and the inspector. Every request carries an email
address, so redaction and restoration run on every path.

`Full.settled` is what "survived" means after a fault, for the requests the test sent:
- the ledger: one row per request, with the status the client got (costs are the test's);
- the budget: nothing still held (`/sidecar/budgets` shows reserved 0 everywhere);
- the upstream pool: no connection checked out; no single-flight left over;
- telemetry and the inspector: a SERVER span and an inspector record per request;
and `still_serving` sends a fresh request through the same process.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import redis

from sidecar.deps import DEPS, Deps
from sidecar.spend.ledger import sqlite_path
from sidecar.spend.redis_rows import PREFIX
from tests.conftest import RunningSidecar
from tests.fakes.otlp import HttpReceiver, attributes
from tests.fakes.spend import rows
from tests.fakes.telemetry import SERVER
from tests.fakes.upstream import FakeUpstream
from tests.fakes.waits import wait_until

MODEL = "test/model"
PROMPT_USD, COMPLETION_USD = 1e-6, 2e-6  # per token
TOKEN = "sk-local-reliability"  # the local key (auth.required)
KEY_NAME = "team-a"
EMAIL = "jane.doe@example.com"  # redacted on the way up, restored on the way back
PLACEHOLDER = "<EMAIL_1>"
NANO = 1_000_000_000
_nonce = itertools.count()
_INT_FIELDS = frozenset({"prompt_tokens", "completion_tokens", "cached_tokens",
                         "cache_write_tokens", "reasoning_tokens", "cost_nusd", "saved_nusd",
                         "estimated", "capped", "cache_hit", "status"})


def cost_nusd(prompt: int, completion: int) -> int:
    """What `prompt` + `completion` tokens of MODEL cost, in nano-dollars."""
    return round(prompt * PROMPT_USD * NANO) + round(completion * COMPLETION_USD * NANO)


def full_config(primary: str, backup: str, otlp: str, **extra: Any) -> dict[str, Any]:
    """Every feature on (see the module docstring); `extra` sections replace the defaults."""
    config: dict[str, Any] = {
        "auth": {"required": True, "keys": [
            {"name": KEY_NAME, "token": TOKEN, "tags": ["reliability"]}]},
        "providers": [
            {"name": "primary", "base_url": primary, "models": ["test/*"]},
            {"name": "backup", "base_url": backup, "models": ["*"]}],
        # Backoff is slept on the injected clock (no real wait in the in-process tests).
        "retry": {"attempts": 3, "backoff_s": 0.01, "max_backoff_s": 0.05},
        "breaker": {"failures": 5, "open_s": 30},
        "cache": {"backend": "memory"},
        "spend": {"prices": {"test/*": {"prompt": PROMPT_USD, "completion": COMPLETION_USD}},
                  "budgets": [{"name": "cap", "scope": "global", "window": "day",
                               "limit_usd": 50, "action": "block"}],
                  "flush_interval_s": 0.05, "fetch_prices": False},
        "telemetry": {"exporters": [{"protocol": "http", "endpoint": otlp, "timeout_s": 2,
                                     "signals": ["traces", "metrics", "logs"]}]},
        "privacy": {"redact": {"mode": "pseudonymize"}},
        "admin": {"ui": True},
        "upstream": {"read_timeout_s": 10, "connect_timeout_s": 5},
    }
    for key, value in extra.items():
        config[key] = ({**config[key], **value} if isinstance(value, dict)
                       and isinstance(config.get(key), dict) else value)
    return config


def chat_body(*, stream: bool = False, text: str | None = None, **extra: Any) -> dict[str, Any]:
    """A chat request mentioning EMAIL; unique unless `text` is given (so no cache hit)."""
    content = text if text is not None else f"request {next(_nonce)}: mail {EMAIL} please"
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    body.update(extra)
    return body


@dataclass
class Seen:
    """What the client got for one request."""

    request_id: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def refused_by_spend(self) -> bool:
        """Refused before anything was taken on (no row: e.g. 503 ledger_unavailable)."""
        return self.status == 503 and b'"ledger_unavailable"' in self.body

    def events(self) -> list[bytes]:
        """The `data:` payloads of an event stream, [DONE] included."""
        return [line[6:] for line in self.body.split(b"\n") if line.startswith(b"data: ")]

    def text(self) -> str:
        """The answer's text: a JSON answer's content, or a stream's joined deltas."""
        if not self.headers.get("Content-Type", "").startswith("text/event-stream"):
            return str(self.json["choices"][0]["message"]["content"])
        out = []
        for data in self.events():
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            for choice in event.get("choices") or ():
                out.append((choice.get("delta") or {}).get("content") or "")
        return "".join(out)


@dataclass
class Full:
    sidecar: RunningSidecar
    primary: FakeUpstream
    backup: FakeUpstream
    receiver: HttpReceiver
    http: aiohttp.ClientSession
    seen: list[Seen] = field(default_factory=list)

    @property
    def deps(self) -> Deps:
        return self.sidecar.app[DEPS]

    @property
    def ledger_path(self) -> Path:
        path = sqlite_path(self.sidecar.settings)
        assert path is not None
        return path

    def ledger_rows(self) -> list[dict[str, Any]]:
        """Every row of the ledger: the SQLite file, or the Redis ledger's stream."""
        url = self.sidecar.settings.spend.ledger or ""
        if not url.startswith("redis"):
            return rows(self.ledger_path)
        client = redis.Redis.from_url(url, decode_responses=True)
        try:
            stream = client.xrange(f"{PREFIX}rows")
        finally:
            client.close()
        return [{k: int(v) if k in _INT_FIELDS else v for k, v in fields.items()}
                for _, fields in stream]

    def sdk(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.sidecar.v1, api_key=TOKEN, max_retries=0)

    async def post(self, body: dict[str, Any], headers: Mapping[str, str] | None = None
                   ) -> Seen:
        """POST a chat completion and read the whole answer (however it ends)."""
        async with self.http.post(f"{self.sidecar.v1}/chat/completions", json=body,
                                  headers={"Authorization": f"Bearer {TOKEN}",
                                           **(headers or {})}) as response:
            try:
                raw = await response.read()
            except aiohttp.ClientPayloadError:  # the sidecar cut a body it could not finish
                raw = b""
            seen = Seen(response.headers["x-sidecar-request-id"], response.status,
                        dict(response.headers), raw)
        self.seen.append(seen)
        return seen

    async def still_serving(self) -> None:
        """A fresh request through the same process: answered, restored, not from the cache."""
        primary_before, backup_before = len(self.primary.requests), len(self.backup.requests)
        async with self.sdk() as client:
            raw = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=[{"role": "user", "content": f"still there? {EMAIL}"}])
        assert raw.http_response.status_code == 200
        assert raw.headers["x-sidecar-cache"] == "MISS"
        assert len(self.primary.requests) + len(self.backup.requests) > (
            primary_before + backup_before)
        self.seen.append(Seen(raw.headers["x-sidecar-request-id"], 200, dict(raw.headers),
                              raw.http_response.content))

    async def settled(self, spans: bool = True) -> dict[str, dict[str, Any]]:
        """Check every invariant for the requests seen so far; return their ledger rows by
        request id (flushed). `spans=False`: the telemetry backend was down, so the SERVER
        spans are not looked for."""
        deps = self.deps
        connector = deps.upstream.session.connector
        assert connector is not None
        flights = deps.flights
        await wait_until(lambda: not connector._acquired and (flights is None or not len(
            flights)), "no upstream connection is checked out and no flight is left")
        await wait_until(self._nothing_held, "every budget hold is settled (reserved 0)")
        ledger = deps.ledger
        assert ledger is not None
        await wait_until(lambda: ledger.healthy, "the ledger writes again")
        await ledger.flush()
        found = self.ledger_rows()
        by_id = {row["request_id"]: row for row in found}
        counts = Counter(row["request_id"] for row in found)
        billed = [seen for seen in self.seen if not seen.refused_by_spend]
        for seen in billed:
            assert counts[seen.request_id] == 1, f"{counts[seen.request_id]} rows for {seen}"
            assert by_id[seen.request_id]["status"] == seen.status, by_id[seen.request_id]
        ids = {s.request_id for s in self.seen}
        if spans:
            assert await asyncio.to_thread(deps.telemetry.flush, 10.0)
            exported = {attributes(span.attributes).get("llm_sidecar.request_id")
                        for _, span in self.receiver.spans() if span.kind == SERVER}
            assert ids <= exported, f"no SERVER span for {ids - exported}"
        inspector = deps.inspector
        assert inspector is not None
        for seen in self.seen:
            record = inspector.find(seen.request_id)
            assert record is not None and record.status == seen.status, (seen, record)
        return {s.request_id: by_id[s.request_id] for s in billed}

    async def budgets(self) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.sidecar.admin_url}/sidecar/budgets") as response:
            assert response.status == 200
            budgets: list[dict[str, Any]] = orjson.loads(await response.read())["budgets"]
        return budgets

    async def spent_nusd(self) -> int:
        """What the global budget counts as spent, in nano-dollars."""
        (budget,) = await self.budgets()
        return round(budget["spent_usd"] * NANO)

    async def _nothing_held(self) -> bool:
        return all(entry["reserved_usd"] == 0 for b in await self.budgets()
                   for entry in b["entries"])
