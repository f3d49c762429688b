"""`python -m bench.prompt_cache`: what the provider prompt cache work costs per request, and
what it saves on an agent's conversation.

    .venv/bin/python -m bench.prompt_cache [--loops 5000] [--rounds 5] [--conversations 5]

1. CPU per request, in this process (median of --rounds, µs of process time): on an agent request
   (an 8 kB system prompt, 6 tools, 20 turns with tool calls and results):
   - the breakpoint rule on the translated Anthropic body (`mark_anthropic`), and what an
     OpenRouter provider's render costs with injection next to the client's bytes as they are
     (copy, markers, `orjson.dumps`);
   - deriving the conversation key (the stable prefix's JSON, BLAKE2b) once;
   - the sticky lookup and its finisher (order + finish) with 10,000 pinned conversations.
2. The input cost of a scripted 20-turn agent conversation (8 kB system prompt, 6 tools, ~1.5 kB
   tool results, ~600-byte answers) through the real sidecar, in this process, to a 50/50 pool
   of two Anthropic-format fakes that each keep a prompt cache (bench/provider_cache.py: 4
   characters a token, Anthropic's rules) and bill Sonnet's prices: input $3/M, cache writes
   1.25x ($3.75/M), cache reads 0.1x ($0.30/M). Four configurations: breakpoints injected or
   not (`providers[].prompt_cache`), sticky pool or not (`prompt_cache.sticky_idle_s`), each
   over --conversations conversations (the pool's draw is seeded per conversation); the input
   cost is summed from the fakes' own bills, the hit rate is the sidecar's report.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from bench.provider_cache import Billed, ProviderCache
from sidecar.app import create_app, make_runner
from sidecar.call import Answer, Call, Usage
from sidecar.config import Settings
from sidecar.upstream.anthropic.request import translate_request
from sidecar.upstream.cache_policy import PromptCachePolicy
from sidecar.upstream.clock import SystemClock
from sidecar.upstream.conversation import conversation_key
from sidecar.upstream.prompt_cache import client_marked, mark_anthropic
from sidecar.upstream.providers.openai import OpenAIProvider
from sidecar.upstream.routing import Routing

MODEL = "anthropic/claude-sonnet-4.5"
INPUT, WRITE, READ = 3e-6, 3.75e-6, 0.3e-6  # USD per token
SYSTEM = ("You are a coding agent working in a large repository. Follow the house rules: small "
          "modules, typed dataclasses, tests for every change, comments that say why. ") * 50
TOOLS = [{"type": "function", "function": {
    "name": f"tool_{i}", "description": "Runs one repository operation and returns its output. "
    * 4, "parameters": {"type": "object", "properties": {
        "path": {"type": "string", "description": "A path in the repository."},
        "pattern": {"type": "string"}}, "required": ["path"]}}} for i in range(6)]
RESULT = "def handler(request):\n    return respond(request.body)\n" * 28  # ~1.5 kB
ANSWER = "I read the file and will now look at the next module to find the call site. " * 8
HEADERS = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))


def agent_messages(turns: int, first: str = "Fix the failing test in tests/unit.") -> list[Any]:
    messages: list[Any] = [{"role": "system", "content": SYSTEM},
                           {"role": "user", "content": first}]
    for i in range(turns):
        messages.append({"role": "assistant", "content": ANSWER, "tool_calls": [{
            "id": f"call_{i}", "type": "function",
            "function": {"name": "tool_1", "arguments": orjson.dumps(
                {"path": f"src/m{i}.py"}).decode()}}]})
        messages.append({"role": "tool", "tool_call_id": f"call_{i}", "content": RESULT})
    return messages


def new_call(body: dict[str, Any]) -> Call:
    raw = orjson.dumps(body)
    return Call(request_id="r", method="POST", path="/chat/completions",
                endpoint="chat/completions", headers=HEADERS, started=time.monotonic(),
                raw_body=raw, body=body, model=body["model"], requested_model=body["model"])


def timed(fn: Callable[[], object], loops: int, rounds: int) -> float:
    """Median µs of CPU per call over `rounds` of `loops` (process time: other processes on a
    shared machine do not count in it)."""
    for _ in range(min(loops, 500)):
        fn()
    samples = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(loops):
            fn()
        samples.append((time.process_time() - started) / loops * 1e6)
    return statistics.median(samples)


def cpu_figures(loops: int, rounds: int) -> list[tuple[str, float]]:
    body = {"model": MODEL, "messages": agent_messages(20), "tools": TOOLS}
    translated, _ = translate_request(body, "claude-sonnet-4-5")
    call = new_call(body)
    injecting = OpenAIProvider("or", "https://openrouter.ai/api/v1", keys=None)
    attempt = call.begin_attempt("or", MODEL, 0.0)

    def render_plain() -> object:
        return call.upstream_body(MODEL)

    policy = PromptCachePolicy("auto", "openrouter")

    def render_injected() -> object:
        return injecting._cached_body(call, attempt, MODEL, policy, None)

    def derive() -> object:
        call.conversation = None
        return conversation_key(call)

    settings = Settings.model_validate({"providers": [
        {"name": n, "base_url": f"http://{n}.example", "models": ["anthropic/*"]}
        for n in ("a", "b")]})
    routing = Routing.build(settings, SystemClock(seed=1), environ={})
    sticky = routing.sticky
    assert sticky is not None
    tier = list(routing.router.tiers(MODEL)[0])
    for i in range(10_000):  # a full table of other conversations
        other = new_call({"model": MODEL, "messages": [{"role": "user", "content": str(i)}]})
        sticky.order(other, MODEL, tier, tier)
        other.begin_attempt("a" if i % 2 else "b", MODEL, 0.0).status = 200
        other.answer = Answer(Usage(2000, 5, cache_write_tokens=1500))
        sticky.finish(other)
    conversation_key(call)

    def lookup() -> object:
        call.finishers.clear()
        call.attempts.clear()
        order = sticky.order(call, MODEL, tier, tier)
        call.begin_attempt(order[0].name, MODEL, 0.0).status = 200
        call.answer = Answer(Usage(20_000, 50, cached_tokens=18_000))
        sticky.finish(call)
        return order

    out = [
        ("breakpoints on the translated Anthropic body (mark_anthropic)",
         timed(lambda: mark_anthropic(translated, 1024, marked=client_marked(body)), loops,
               rounds)),
        ("OpenRouter body as the client sent it (no injection)",
         timed(render_plain, loops, rounds)),
        ("OpenRouter body with breakpoints (copy, mark, orjson.dumps)",
         timed(render_injected, loops, rounds)),
        ("conversation key, derived once (prefix JSON + BLAKE2b)",
         timed(derive, loops, rounds)),
        ("sticky lookup + finisher, 10,000 conversations pinned",
         timed(lookup, loops, rounds)),
    ]
    return out


# --- the conversation ------------------------------------------------------------------------

class Anthropic:
    """An Anthropic Messages fake with its own prompt cache; answers ANSWER with a tool call."""

    def __init__(self) -> None:
        self.cache = ProviderCache()
        self.billed: list[Billed] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self.messages)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/v1"

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def messages(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        billed = self.cache.bill_anthropic(body)
        self.billed.append(billed)
        return web.json_response({
            "id": "msg_b", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{"type": "text", "text": ANSWER}], "stop_reason": "end_turn",
            "usage": {"input_tokens": billed.input, "output_tokens": 60,
                      "cache_creation_input_tokens": billed.written,
                      "cache_read_input_tokens": billed.read}})


async def conversation_cost(inject: bool, sticky: bool, seed: int, turns: int
                            ) -> tuple[float, float | None]:
    """(input USD from the fakes' bills, the sidecar's provider-cache hit rate)."""
    fakes = [Anthropic(), Anthropic()]
    for fake in fakes:
        await fake.start()
    state = tempfile.TemporaryDirectory(prefix="bench-pc-")
    settings = Settings.model_validate({
        "state_dir": state.name, "cache": {"backend": "off"},
        "telemetry": {"prometheus": False}, "spend": {"fetch_prices": False, "prices": {
            MODEL: {"prompt": INPUT, "completion": 15e-6, "input_cache_read": READ,
                    "input_cache_write": WRITE}}},
        "prompt_cache": {"sticky_idle_s": 600 if sticky else 0},
        "providers": [{"name": name, "base_url": fake.url, "format": "anthropic",
                       "api_key": "k", "models": ["anthropic/*"], "strip_prefix": True,
                       "prompt_cache": "auto" if inject else "off"}
                      for name, fake in zip("ab", fakes, strict=True)]})
    runner = make_runner(create_app(settings, clock=SystemClock(seed=seed)), shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as http:
            history = agent_messages(0, first=f"Conversation {seed}: fix the failing test.")
            for turn in range(turns):
                async with http.post(url + "/v1/chat/completions", json={
                        "model": MODEL, "tools": TOOLS, "messages": history}) as response:
                    assert response.status == 200, await response.text()
                    answer = await response.json()
                history.append({**answer["choices"][0]["message"], "tool_calls": [{
                    "id": f"call_{turn}", "type": "function",
                    "function": {"name": "tool_1", "arguments": "{}"}}]})
                history.append({"role": "tool", "tool_call_id": f"call_{turn}",
                                "content": RESULT})
            async with http.get(url + "/sidecar/usage?window=all") as response:
                report = await response.json()
    finally:
        await runner.cleanup()
        for fake in fakes:
            await fake.close()
        state.cleanup()
    billed = [b for fake in fakes for b in fake.billed]
    cost = sum(b.input * INPUT + b.written * WRITE + b.read * READ for b in billed)
    return cost, report["total_provider_cache_hit_rate"]


async def conversation_figures(conversations: int, turns: int
                               ) -> list[tuple[str, float, float]]:
    out = []
    for inject, sticky in ((False, False), (False, True), (True, False), (True, True)):
        costs, rates = [], []
        for seed in range(conversations):
            cost, rate = await conversation_cost(inject, sticky, seed, turns)
            costs.append(cost)
            rates.append(rate or 0.0)
        label = (f"breakpoints {'injected' if inject else 'off'}, "
                 f"{'sticky pool' if sticky else 'pool drawn by weight'}")
        out.append((label, statistics.mean(costs), statistics.mean(rates)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.prompt_cache")
    parser.add_argument("--loops", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--conversations", type=int, default=5)
    parser.add_argument("--turns", type=int, default=20)
    args = parser.parse_args()
    print("| per request (agent request: 8 kB system, 6 tools, 20 turns) | µs |")
    print("|---|---:|")
    for label, micros in cpu_figures(args.loops, args.rounds):
        print(f"| {label} | {micros:.1f} |")
    print()
    print(f"| {args.turns}-turn agent conversation, 50/50 pool, mean of "
          f"{args.conversations} | input USD | vs no caching | provider cache hit rate |")
    print("|---|---:|---:|---:|")
    rows = asyncio.run(conversation_figures(args.conversations, args.turns))
    base = rows[0][1]
    for label, cost, rate in rows:
        print(f"| {label} | {cost:.4f} | {cost / base:.0%} | {rate:.1%} |")


if __name__ == "__main__":
    main()
