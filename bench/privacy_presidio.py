"""Presidio's side of `python -m bench.privacy --presidio`; runs in bench/.presidio-venv.

Reads the 8 KB prompts as JSON on stdin, writes precision/recall per entity on the corpus and
CPU time per prompt as JSON on stdout. Uses the pattern recognizers directly (no AnalyzerEngine:
it wants a spaCy model), with Presidio's default score threshold (0: every result counts).
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
from pathlib import Path

# Replace the script's own folder: bench/profile.py would shadow the stdlib's `profile`.
sys.path[0] = str(Path(__file__).resolve().parent.parent)
logging.disable(logging.CRITICAL)  # tldextract warns that it cannot refresh its list offline

from presidio_analyzer.predefined_recognizers import (  # noqa: E402
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    UsSsnRecognizer,
)

from bench.privacy_corpus import load, score  # noqa: E402

OURS = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CREDIT_CARD",
        "IBAN_CODE": "IBAN", "US_SSN": "US_SSN", "IP_ADDRESS": "IP_ADDRESS"}
RECOGNIZERS = [(EmailRecognizer(), ["EMAIL_ADDRESS"]), (PhoneRecognizer(), ["PHONE_NUMBER"]),
               (CreditCardRecognizer(), ["CREDIT_CARD"]), (IbanRecognizer(), ["IBAN_CODE"]),
               (UsSsnRecognizer(), ["US_SSN"]), (IpRecognizer(), ["IP_ADDRESS"])]


def detect(text: str) -> list[tuple[int, int, str]]:
    found = []
    for recognizer, entities in RECOGNIZERS:
        for result in recognizer.analyze(text, entities, None):
            found.append((result.start, result.end, OURS[result.entity_type]))
    return found


def cpu_us(text: str, runs: int = 20, rounds: int = 5) -> float:
    results = []
    for _ in range(rounds):
        start = time.thread_time()
        for _ in range(runs):
            detect(text)
        results.append((time.thread_time() - start) / runs * 1e6)
    return statistics.median(results)


def main() -> None:
    prompts = json.load(sys.stdin)
    scores = score(detect, load())
    json.dump({
        "scores": {entity: {"precision": s.precision, "recall": s.recall, "tp": s.tp,
                            "fp": s.fp, "fn": s.fn, "false_positives": s.false_positives,
                            "misses": s.misses}
                   for entity, s in scores.items() if entity in OURS.values()},
        "latency": {name: cpu_us(text) for name, text in prompts.items()},
    }, sys.stdout)


if __name__ == "__main__":
    main()
