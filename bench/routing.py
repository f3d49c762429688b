"""`python -m bench.routing`: CPU per request of routing, against the core's single-provider path.

Each case runs the model pipeline's routing part (`fallback` when present, then `route`) on a
fresh Call, against a stub provider that answers at once (no sockets), so the figure is the
router's own work: picking targets, breakers, the retry loop, averages, the fallback stage.
`core` is the route terminal as the core shipped it (begin an attempt, send). Finishers run after
each request, as the handler runs them. Reported: µs of CPU per request (process time), the
median of several rounds, and the difference to `core`.

    .venv/bin/python -m bench.routing [--requests N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from sidecar.call import Attempt, Call, Reply
from sidecar.config import Settings
from sidecar.deps import Deps
from sidecar.pipeline import compose
from sidecar.pipeline.fallback import Fallback
from sidecar.pipeline.route import Route
from sidecar.upstream.client import UpstreamClient

HEADERS = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))
RAW = b'{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'


class StubProvider:
    """Answers every attempt at once with a prebuilt 200, as a provider would after I/O."""

    keys = None  # no key ring of its own (Provider.keys): route never rotates a key here

    def __init__(self, name: str) -> None:
        self.name = name
        self.base_url = f"http://{name}"
        self._reply_headers = CIMultiDict({"Content-Type": "application/json"})

    def upstream_model(self, model: str) -> str:
        return model

    async def send(self, client: UpstreamClient, call: Call, attempt: Attempt) -> Reply:
        call.upstream_body(self.upstream_model(attempt.model))
        attempt.status = 200
        attempt.headers_at = attempt.ended = time.monotonic()
        return Reply(200, self._reply_headers, body=b"{}")

    async def forward(self, client: UpstreamClient, call: Call, attempt: Attempt) -> Reply:
        raise NotImplementedError


def new_call(body: dict[str, Any]) -> Call:
    model = body["model"]
    return Call(request_id="r", method="POST", path="/chat/completions",
                endpoint="chat/completions", headers=HEADERS, started=time.monotonic(),
                raw_body=RAW, body=dict(body), model=model, requested_model=model)


Handler = Callable[[Call], Awaitable[Reply]]


def routing_handler(config: dict[str, Any]) -> Handler:
    """fallback (when the pipeline would have it) + route, with stub providers."""
    settings = Settings.model_validate(config)
    deps = Deps.build(settings)
    for target in deps.routing.targets:
        target.provider = StubProvider(target.name)
    routing = deps.routing
    local = routing.configured and not routing.openrouter_only
    stages = []
    if settings.routes or local:
        stages.append(Fallback(settings.routes, routing.retry.on_status, local=local,
                               reads_answer=False))
    return compose(stages, Route(deps.upstream, routing).model)


def core_handler() -> Handler:
    """The core's Route.model (commit a94c983): one provider, one attempt."""
    provider = StubProvider("upstream")
    client = UpstreamClient(Settings().upstream)

    async def model(call: Call) -> Reply:
        assert call.model is not None
        attempt = call.begin_attempt(provider.name, call.model, time.monotonic())
        return await provider.send(client, call, attempt)
    return model


def providers(*entries: tuple[str, list[str], float]) -> list[dict[str, Any]]:
    return [{"name": n, "base_url": f"http://{n}.example", "models": m, "weight": w,
             "prices": {"*": {"prompt": 1e-6 * (i + 1), "completion": 2e-6}}}
            for i, (n, m, w) in enumerate(entries)]


PLAIN = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
THREE = providers(("a", ["openai/*"], 3), ("b", ["openai/*"], 1), ("c", ["*"], 1))
CASES: list[tuple[str, Callable[[], Handler], dict[str, Any]]] = [
    ("core: route as shipped (one provider, one try)", core_handler, PLAIN),
    ("no providers: upstream alone (default config)",
     lambda: routing_handler({"upstream": {"url": "http://u.example"}}), PLAIN),
    ("one provider: retry + breaker on, fallback stage",
     lambda: routing_handler({"providers": providers(("a", ["*"], 1))}), PLAIN),
    ("three providers: weighted pool + fallback tier",
     lambda: routing_handler({"providers": THREE}), PLAIN),
    ("three providers, provider.sort=latency",
     lambda: routing_handler({"providers": THREE}),
     {**PLAIN, "provider": {"sort": "latency"}}),
    ("three providers, models: [a, b] (first answers)",
     lambda: routing_handler({"providers": THREE}),
     {**PLAIN, "models": ["openai/gpt-4o", "anthropic/claude-x"]}),
    ("route alias (3 candidates, first answers)",
     lambda: routing_handler({"providers": THREE, "routes": {"fast": ["openai/gpt-4o-mini",
                                                                       "x/y", "z/w"]}}),
     {**PLAIN, "model": "fast"}),
]


async def measure(handler: Handler, body: dict[str, Any], requests: int) -> float:
    """µs of CPU per request, including building the Call (the same in every case)."""
    for _ in range(min(2000, requests)):  # warm up caches (tier plans, label children)
        await serve(handler, body)
    started = time.process_time()
    for _ in range(requests):
        await serve(handler, body)
    return (time.process_time() - started) / requests * 1e6


async def serve(handler: Handler, body: dict[str, Any]) -> None:
    call = new_call(body)
    await handler(call)
    for finisher in reversed(call.finishers):  # as the handler does once the reply is sent
        finisher(call)


async def run(requests: int, rounds: int) -> list[tuple[str, float]]:
    handlers = [(name, make(), body) for name, make, body in CASES]
    samples: dict[str, list[float]] = {name: [] for name, _, _ in handlers}
    for _ in range(rounds):  # interleaved, so drift on a shared machine hits every case
        for name, handler, body in handlers:
            samples[name].append(await measure(handler, body, requests))
    return [(name, statistics.median(values)) for name, values in samples.items()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.requests, args.rounds))
    core = results[0][1]
    print("| case | CPU µs/request | vs core |")
    print("|---|---:|---:|")
    for name, micros in results:
        print(f"| {name} | {micros:.2f} | {micros - core:+.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
