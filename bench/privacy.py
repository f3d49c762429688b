"""Redaction figures: `python -m bench.privacy [--presidio]`.

1. Precision and recall per entity on the labelled corpus (tests/fixtures/pii_corpus.txt).
2. Time added by redaction for an 8 KB prompt, every entity on (median of repeated runs,
   CPU time of this thread): English prose with a few entities, the same without any, a JSON
   document, Python source.
3. Throughput of the model pipeline in-process (read body → [privacy] → render the upstream
   body → a terminal that answers at once), with the privacy stage in pseudonymize mode and
   without it, for the same 8 KB chat request.
4. `--presidio`: the same corpus and prompts through presidio-analyzer's pattern recognizers
   (no NLP model: its spaCy model cannot be downloaded here). Presidio is installed on demand
   into bench/.presidio-venv (git-ignored), never into the project's environment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.privacy_corpus import ENTITIES, Score, load, score

HERE = Path(__file__).resolve().parent
PRESIDIO_VENV = HERE / ".presidio-venv"
PRESIDIO_PIN = "presidio-analyzer==2.2.366"
_PROSE = ("the quarterly report shows revenue growth across regions while customer feedback "
          "about onboarding improved after the team shipped the new dashboard and support "
          "answered tickets faster than last year please summarize the main risks and list "
          "actions for the next meeting with owners and dates")
_WORDS = _PROSE.split(" ")


def prompts() -> dict[str, str]:
    """Four 8 KB texts (8192 characters each), deterministic."""
    rng = random.Random(7)

    def prose(size: int) -> str:
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < size:
            words.append(rng.choice(_WORDS))
        return " ".join(words)[:size]

    entities = (" Contact jane.doe@example.com or +44 20 7946 0958; card 4111 1111 1111 1111, "
                "IBAN DE89 3704 0044 0532 0130 00, server 203.0.113.42, key "
                "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z. ")
    base = prose(8192 - len(entities))
    middle = len(base) // 2
    records = [{"id": i, "name": f"item-{i}", "price": round(12.5 * i, 2), "tags": ["a_b", "c-d"],
                "updated": f"2024-03-{1 + i % 28:02d}T14:22:{i % 60:02d}Z"} for i in range(300)]
    source = (HERE.parent / "sidecar" / "privacy" / "restorer.py").read_text()
    return {
        "prose with 6 entities": base[:middle] + entities + base[middle:],
        "prose without entities": prose(8192),
        "JSON records": json.dumps(records)[:8192],
        "Python source": (source * 3)[:8192],
    }


def cpu_us(function: Callable[[], Any], runs: int = 200, rounds: int = 7) -> float:
    """Median over rounds of the mean CPU time per call, in µs."""
    results = []
    for _ in range(rounds):
        start = time.thread_time()
        for _ in range(runs):
            function()
        results.append((time.thread_time() - start) / runs * 1e6)
    return statistics.median(results)


def ours() -> tuple[dict[str, Score], dict[str, float]]:
    from sidecar.config.privacy import RedactSettings
    from sidecar.privacy.redactor import Redaction, Scanner

    settings = RedactSettings()
    scanner = Scanner(settings.entities, (), settings.phone_regions)
    scores = score(lambda text: [(f.start, f.end, f.entity) for f in scanner.find(text)],
                   load())
    latency = {name: cpu_us(lambda t=text: Redaction(scanner, pseudonymize=True).redact(t))
               for name, text in prompts().items()}
    return scores, latency


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    rule = "| " + " | ".join("-" * w for w in widths) + " |"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
            for r in rows]
    return "\n".join([line, rule, *body])


def presidio() -> dict[str, Any]:
    """Run bench/privacy_presidio.py in Presidio's own virtualenv; return its JSON."""
    python = PRESIDIO_VENV / "bin" / "python"
    if not python.exists():
        print(f"installing {PRESIDIO_PIN} into {PRESIDIO_VENV} (once) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PRESIDIO_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", PRESIDIO_PIN], check=True)
    texts = json.dumps(prompts())
    done = subprocess.run([str(python), str(HERE / "privacy_presidio.py")], input=texts,
                          capture_output=True, text=True, check=True, cwd=HERE.parent)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.privacy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presidio", action="store_true",
                        help="also run presidio-analyzer's pattern recognizers")
    args = parser.parse_args(argv)
    scores, latency = ours()
    other = presidio() if args.presidio else None
    header = ["entity", "precision", "recall", "found / labelled"]
    if other:
        header += ["Presidio precision", "Presidio recall"]
    rows = []
    for entity in ENTITIES:
        s = scores[entity]
        row = [entity, f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.tp} / {s.tp + s.fn}"]
        if other:
            theirs = other["scores"].get(entity)
            row += ([f"{theirs['precision']:.3f}", f"{theirs['recall']:.3f}"] if theirs
                    else ["—", "—"])
        rows.append(row)
    print(f"Corpus: {len(load())} sentences\n")
    print(table(rows, header))
    header = ["8 KB prompt", "llm-sidecar µs"] + (["Presidio µs"] if other else [])
    rows = [[name, f"{us:.0f}"] + ([f"{other['latency'][name]:.0f}"] if other else [])
            for name, us in latency.items()]
    print("\nCPU time to redact one 8 KB prompt, every entity on (median):\n")
    print(table(rows, header))
    rates = asyncio.run(pipeline_rates())
    print("\nIn-process model pipeline, 8 KB chat request (requests per CPU second):\n")
    print(table([[name, f"{rate:,.0f}"] for name, rate in rates.items()],
                ["pipeline", "requests/s"]))
    return 0


async def pipeline_rates(seconds: float = 2.0) -> dict[str, float]:
    """read_body's parse → [privacy] → the upstream body as the provider renders it."""
    import orjson
    from multidict import CIMultiDict, CIMultiDictProxy

    from sidecar.call import Call, Next, Reply
    from sidecar.config.privacy import RedactSettings
    from sidecar.pipeline import compose
    from sidecar.pipeline.privacy import Privacy
    from sidecar.pipeline.read_body import accept_body
    from sidecar.telemetry.metrics import Metrics

    text = prompts()["prose with 6 entities"]
    raw = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": text}]})
    answer = orjson.dumps({"choices": [{"message": {"content": "ok <EMAIL_1>"}}]})
    headers = CIMultiDictProxy(CIMultiDict[str]())

    async def terminal(call: Call) -> Reply:
        call.upstream_body("m")
        return Reply(200, CIMultiDict(), body=answer)

    class Parse:
        name = "parse"
        reads_answer = False
        async def __call__(self, call: Call, next: Next) -> Reply:
            accept_body(call, raw)
            return await next(call)

    rates = {}
    for name, stages in (("without privacy", [Parse()]),
                         ("with privacy (pseudonymize)",
                          [Parse(), Privacy(RedactSettings(mode="pseudonymize"), Metrics())])):
        handler = compose(stages, terminal)
        count, start = 0, time.thread_time()
        while time.thread_time() - start < seconds:
            for _ in range(50):
                await handler(Call("r", "POST", "/chat/completions", "chat/completions",
                                   headers, 0.0))
            count += 50
        rates[name] = count / (time.thread_time() - start)
    return rates


if __name__ == "__main__":
    sys.exit(main())
