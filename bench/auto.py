"""`python -m bench.auto`: what the auto router costs, and what it saves (docs/auto.md).

1. classifier  µs of CPU per request (this thread's CPU time around each call, so a busy
               machine's scheduling is not counted), p50 and p99, to read the body, compute
               the features and pick the tier, on short and long prompts;
2. pipeline    µs of CPU per request through the routing part of the pipeline (auto when
               configured, fallback, route) against a stub provider that answers at once (no
               sockets: bench/routing.py's method), with and without routers, for a named model
               and for `sidecar/auto`, short and 300 KB;
3. cost        on the labelled set (tests/fixtures/auto_labelled.jsonl), what the requests cost
               always sent to the baseline against sent where the router puts them, priced with
               the bundled table, for each `prefer`. Prompt tokens are the classifier's estimate;
               every answer is assumed to be `--completion` tokens (the request's own limit when
               lower) whichever model writes it: a reasoning model's hidden thinking tokens are
               not modelled, so the reasoning tier's cost is a floor.

    .venv/bin/python -m bench.auto [--part classifier|pipeline|cost] [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from typing import Any

from bench.auto_labelled import TIERS, Case, load
from bench.routing import Handler, StubProvider, new_call
from sidecar.auto.classify import features
from sidecar.auto.pins import Pins
from sidecar.auto.router import Router
from sidecar.auto.shapes import read
from sidecar.auto.tiers import decide
from sidecar.call import Usage
from sidecar.config import Settings
from sidecar.config.auto import RouterSettings, TierModels
from sidecar.deps import Deps
from sidecar.pipeline import compose
from sidecar.pipeline.auto import Auto
from sidecar.pipeline.fallback import Fallback
from sidecar.pipeline.route import Route
from sidecar.spend.price_book import PriceBook
from sidecar.spend.pricing import to_usd

# The router of the example, on models the bundled table prices.
TIER_MODELS = {"simple": ["openai/gpt-4o-mini"], "medium": ["openai/gpt-4.1-mini"],
               "complex": ["openai/gpt-4o"], "reasoning": ["openai/o3-mini"]}
BASELINE = "openai/gpt-4o"
CONFIG: dict[str, Any] = {"upstream": {"url": "http://u.example"},
                          "spend": {"fetch_prices": False},
                          "auto": {"routers": {"sidecar/auto": {"tiers": TIER_MODELS,
                                                                "baseline": BASELINE}}}}
LONG = "Summarize the report below in five bullet points.\n\n" + (
    "The regional office reported steady revenue across the quarter despite costs. " * 3_900)


def bundled_book(settings: Settings) -> PriceBook:
    book = PriceBook(settings, Deps.build(settings).upstream)
    asyncio.run(book.start())  # fetch_prices is off: the bundled table only
    return book


# -- 1. the classifier --------------------------------------------------------------------

def classifier_cases() -> list[tuple[str, str, dict[str, Any]]]:
    labelled = {c.id: c for c in load()}
    picked = [("short chat (2 words)", "greeting"), ("12-turn conversation", "conv-12"),
              ("agent loop, 6 tool results", "agent-loop-6"),
              ("code paste, 220 lines", "debug-big-paste"),
              ("document, 16,000 words (98 KB)", "long-contract-analysis"),
              ("document, 50,000 words (307 KB)", "long-doc-60k")]
    out = [(name, labelled[key].endpoint, labelled[key].body) for name, key in picked]
    out.append(("one 400 KB message", "chat/completions",
                {"messages": [{"role": "user", "content": "Summarize:\n\n" + "x" * 400_000}]}))
    return out


def classify_once(endpoint: str, body: dict[str, Any]) -> None:
    shape = read(endpoint, body)
    assert shape is not None
    decide(features(shape))


def bench_classifier(requests: int) -> list[tuple[str, int, float, float]]:
    out = []
    for name, endpoint, body in classifier_cases():
        for _ in range(min(requests, 200)):
            classify_once(endpoint, body)
        samples = []
        for _ in range(requests):
            started = time.thread_time_ns()
            classify_once(endpoint, body)
            samples.append(time.thread_time_ns() - started)
        samples.sort()
        chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
        out.append((name, chars, samples[len(samples) // 2] / 1000,
                    samples[int(len(samples) * 0.99)] / 1000))
    return out


# -- 2. the pipeline ----------------------------------------------------------------------

def handler(config: dict[str, Any], book: PriceBook) -> Handler:
    """auto (when configured) + fallback (when the pipeline would have it) + route, stubbed."""
    settings = Settings.model_validate(config)
    deps = Deps.build(settings)
    for target in deps.routing.targets:
        target.provider = StubProvider(target.name)
    routing = deps.routing
    stages: list[Any] = []
    routers = settings.auto.routers
    if routers:
        built = {name: Router(name, r, book.lookup, book.window) for name, r in routers.items()}
        stages.append(Auto(built, Pins(settings.auto.max_sessions, routing.clock.now)))
        stages.append(Fallback(settings.routes, routing.retry.on_status, local=False,
                               reads_answer=False))
    return compose(stages, Route(deps.upstream, routing).model)


def chat(model: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


async def bench_pipeline(requests: int, rounds: int, book: PriceBook
                         ) -> list[tuple[str, float]]:
    plain = {"upstream": {"url": "http://u.example"}}
    cases = [
        ("no router; named model, 'hi'", plain, chat("openai/gpt-4o-mini", "hi")),
        ("router configured; named model, 'hi'", CONFIG, chat("openai/gpt-4o-mini", "hi")),
        ("sidecar/auto, 'hi'", CONFIG, chat("sidecar/auto", "hi")),
        ("sidecar/auto, 'hi', session pinned", CONFIG,
         chat("sidecar/auto", "hi", session_id="s-1")),
        ("no router; named model, 300 KB", plain, chat("openai/gpt-4o-mini", LONG)),
        ("sidecar/auto, 300 KB", CONFIG, chat("sidecar/auto", LONG)),
    ]
    built = [(name, handler(config, book), body) for name, config, body in cases]
    samples: dict[str, list[float]] = {name: [] for name, _, _ in built}
    for _ in range(rounds):  # interleaved: drift on a shared machine hits every case
        for name, handle, body in built:
            count = requests if len(body["messages"][0]["content"]) < 1000 else requests // 20
            for _ in range(min(count, 500)):
                await serve_body(handle, body)
            started = time.process_time()
            for _ in range(count):
                await serve_body(handle, body)
            samples[name].append((time.process_time() - started) / count * 1e6)
    return [(name, statistics.median(values)) for name, values in samples.items()]


async def serve_body(handle: Handler, body: dict[str, Any]) -> None:
    call = new_call(body)
    await handle(call)
    for finisher in reversed(call.finishers):
        finisher(call)


# -- 3. the cost on the labelled set --------------------------------------------------------

def bench_cost(book: PriceBook, completion: int
               ) -> dict[str, tuple[float, float, dict[str, tuple[int, float, float]]]]:
    """prefer -> (baseline USD, routed USD, tier -> (requests, baseline USD, routed USD))."""
    cases = load()
    out = {}
    for prefer in ("cheap", "balanced", "quality"):
        settings = RouterSettings(tiers=TierModels(**TIER_MODELS), baseline=BASELINE,
                                  prefer=prefer)
        router = Router("sidecar/auto", settings, book.lookup, book.window)
        per_tier: dict[str, list[float]] = {t: [0, 0.0, 0.0] for t in TIERS}
        for case in cases:
            shape = read(case.endpoint, case.body)
            assert shape is not None
            f = features(shape)
            pick = router.choose(f)
            usage = Usage(prompt_tokens=f.tokens,
                          completion_tokens=min(completion, f.max_output or completion))
            tally = per_tier[pick.tier]
            tally[0] += 1
            tally[1] += _usd(book, BASELINE, usage)
            tally[2] += _usd(book, pick.models[0], usage)
        out[prefer] = (sum(t[1] for t in per_tier.values()),
                       sum(t[2] for t in per_tier.values()),
                       {tier: (int(t[0]), t[1], t[2]) for tier, t in per_tier.items()})
    return out


def _usd(book: PriceBook, model: str, usage: Usage) -> float:
    price = book.lookup(model)
    assert price is not None, f"{model} is not in the bundled table"
    return to_usd(price.cost(usage))


def _cases_note(cases: list[Case]) -> str:
    return f"{len(cases)} requests ({sum(c.split == 'holdout' for c in cases)} held out)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.auto", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("classifier", "pipeline", "cost"), action="append")
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--completion", type=int, default=400,
                        help="completion tokens assumed per answer (cost part)")
    args = parser.parse_args(argv)
    parts = args.part or ["classifier", "pipeline", "cost"]
    book = bundled_book(Settings.model_validate(CONFIG))
    if "classifier" in parts:
        print("| prompt | characters | classifier CPU µs p50 | p99 |\n|---|---:|---:|---:|")
        for name, chars, p50, p99 in bench_classifier(args.requests):
            print(f"| {name} | {chars:,} | {p50:.1f} | {p99:.1f} |")
        print()
    if "pipeline" in parts:
        results = asyncio.run(bench_pipeline(args.requests, args.rounds, book))
        first = results[0][1]
        print("| case | CPU µs/request | vs the first |\n|---|---:|---:|")
        for name, micros in results:
            print(f"| {name} | {micros:.1f} | {micros - first:+.1f} |")
        print()
    if "cost" in parts:
        print(f"Labelled set: {_cases_note(load())}; {args.completion} completion tokens "
              f"each; baseline {BASELINE}; prices: the bundled table.\n")
        print("| prefer | always the baseline USD | routed USD | saved | requests per tier "
              "(simple/medium/complex/reasoning) |\n|---|---:|---:|---:|---|")
        for prefer, (baseline, routed, per_tier) in bench_cost(book, args.completion).items():
            counts = "/".join(str(per_tier[t][0]) for t in TIERS)
            print(f"| {prefer} | {baseline:.4f} | {routed:.4f} | "
                  f"{(1 - routed / baseline) * 100:.0f} % | {counts} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
