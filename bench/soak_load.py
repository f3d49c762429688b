"""The soak's clients (`python -m bench.soak`): a closed loop of mixed requests, each checked.

Each client sends, at random (seeded): a fresh JSON chat (a miss), a JSON chat from a small
pool of repeated prompts (hits, and identical requests collapsed in flight), and the same two
as streams asking for usage. Every prompt carries an email address the sidecar pseudonymizes,
and the fake's answer names it back by its placeholder, so every answer checks restoration.

What counts as an error:
- expected: a stream that ends with an error event while it carries `x-fake-fault: break`
  (the fake cut it on purpose after two events; nothing may be retried once streaming);
- unexpected: anything else: a status other than 200, a transport error, a stream without
  `[DONE]` or usage, an answer (fresh or from the cache) whose text is not the fake's answer
  for that prompt with the address restored, a missing cost.

Costs the responses report are kept by request id: `x-sidecar-cost-usd` on JSON answers,
`usage.cost` on streams (nano-dollars), for the comparison with the ledger.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import orjson

from bench.soak_upstream import FAULT_HEADER, PLACEHOLDER, answer_text

EMAIL = "soak.user@example.com"
KINDS = (("json", 0.3), ("json_repeat", 0.2), ("stream", 0.3), ("stream_repeat", 0.2))
REPEATED = 50  # prompts in the pool of repeated ones
NANO = 10**9
_KEEP = 20  # unexpected errors described in the report (all are counted)


@dataclass
class Tally:
    answered: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    cache: Counter[str] = field(default_factory=Counter)
    expected: Counter[str] = field(default_factory=Counter)
    unexpected: int = 0
    examples: list[str] = field(default_factory=list)
    reported: dict[str, int] = field(default_factory=dict)  # request id -> nano-dollars
    unreported: set[str] = field(default_factory=set)  # answered, no cost reported (expected)
    ids: set[str] = field(default_factory=set)

    def fail(self, what: str) -> None:
        self.unexpected += 1
        if len(self.examples) < _KEEP:
            self.examples.append(what)


def expected_text(prompt: str) -> str:
    return answer_text(prompt.replace(EMAIL, PLACEHOLDER)).replace(PLACEHOLDER, EMAIL)


class Load:
    def __init__(self, url: str, token: str, *, clients: int, seed: int, deadline: float,
                 max_requests: int, model: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.clients = clients
        self.deadline = deadline
        self.max_requests = max_requests
        self.model = model
        self.tally = Tally()
        self._random = random.Random(seed)
        self._sent = 0

    async def run(self) -> Tally:
        timeout = aiohttp.ClientTimeout(total=120)
        connector = aiohttp.TCPConnector(limit=self.clients)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            await asyncio.gather(*(self._client(session) for _ in range(self.clients)))
        return self.tally

    def _next(self) -> tuple[str, str] | None:
        if self._sent >= self.max_requests or time.monotonic() >= self.deadline:
            return None
        self._sent += 1
        kind = self._random.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
        n = self._random.randrange(REPEATED) if kind.endswith("repeat") else self._sent
        tag = "repeated" if kind.endswith("repeat") else "fresh"
        return kind, f"soak {tag} question {n}: please write to {EMAIL} about it"

    async def _client(self, session: aiohttp.ClientSession) -> None:
        while (chosen := self._next()) is not None:
            kind, prompt = chosen
            self.tally.kinds[kind] += 1
            stream = kind.startswith("stream")
            body: dict[str, Any] = {"model": self.model,
                                    "messages": [{"role": "user", "content": prompt}]}
            if stream:
                body.update(stream=True, stream_options={"include_usage": True})
            try:
                async with session.post(f"{self.url}/v1/chat/completions", json=body,
                                        headers=self.headers) as response:
                    raw = await response.read()
                    self._check(kind, prompt, response.status, response.headers, raw)
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.tally.fail(f"{kind}: {type(exc).__name__}: {exc}")

    def _check(self, kind: str, prompt: str, status: int, headers: Any, raw: bytes) -> None:
        tally = self.tally
        request_id = headers.get("x-sidecar-request-id", "")
        tally.answered += 1
        tally.ids.add(request_id)
        tally.cache[headers.get("x-sidecar-cache", "-")] += 1
        if status != 200:
            tally.fail(f"{kind} {request_id}: status {status}: {raw[:200]!r}")
            return
        expected = expected_text(prompt)
        if not kind.startswith("stream"):
            text = orjson.loads(raw)["choices"][0]["message"]["content"]
            cost = headers.get("x-sidecar-cost-usd")
            if text != expected or cost is None:
                tally.fail(f"{kind} {request_id}: text {text!r}, cost {cost}")
                return
            tally.reported[request_id] = int(Decimal(cost) * NANO)
            return
        events = [line[6:] for line in raw.split(b"\n") if line.startswith(b"data: ")]
        if events and events[-1].startswith(b'{"error"'):
            if headers.get(FAULT_HEADER) == "break":
                tally.expected["stream broken on purpose"] += 1
                tally.unreported.add(request_id)
            else:
                tally.fail(f"{kind} {request_id}: error event {events[-1][:200]!r}")
            return
        if not events or events[-1] != b"[DONE]":
            tally.fail(f"{kind} {request_id}: no [DONE]")
            return
        text, cost = "", None
        for data in events[:-1]:
            event = orjson.loads(data)
            for choice in event.get("choices") or ():
                text += (choice.get("delta") or {}).get("content") or ""
            if isinstance(event.get("usage"), dict):
                cost = event["usage"].get("cost")
        if text != expected or not isinstance(cost, (int, float)):
            tally.fail(f"{kind} {request_id}: text {text!r}, usage.cost {cost}")
            return
        tally.reported[request_id] = round(cost * NANO)
