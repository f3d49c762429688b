"""The auto router's labelled requests (tests/fixtures/auto_labelled.jsonl) and their scoring.

One request a line: `{"id", "tier", "split", "endpoint", "body"}`. `tier` is the label, given by
the rubric in docs/auto.md (what the request needs, not what the classifier says); `split` is
`dev` (looked at while the thresholds were set) or `holdout` (every third case of each tier,
chosen when the set was written, never used to tune). Long content is written as a marker a
string holds whole, expanded here the same way every time:

    {{prose:N}}   N words of a plain report (the same sentences in a seeded order)
    {{code:N}}    N lines of Python

Used by the accuracy test (tests/unit/auto/test_labelled.py) and `python -m bench.auto`.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

LABELLED = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "auto_labelled.jsonl"
TIERS = ("simple", "medium", "complex", "reasoning")
_MARK = re.compile(r"\{\{(prose|code):(\d+)\}\}")
_PROSE = (
    "The regional office reported steady revenue across the quarter despite higher costs.",
    "Staff turnover fell slightly after the new onboarding programme was introduced.",
    "The supplier agreed to deliver the remaining units before the end of the month.",
    "Customer complaints were mostly about delivery times in the northern districts.",
    "The board noted that the warehouse lease expires in the second half of next year.",
    "Payment terms remain thirty days from the date of invoice unless agreed otherwise.",
    "Either party may terminate this agreement with ninety days of written notice.",
    "The marketing team ran two campaigns, and the second one reached more new customers.",
    "Energy prices rose sharply in the winter months and have since stabilised.",
    "The audit found no material errors in the accounts for the financial year.",
    "A new distribution centre opened in March and now handles a fifth of all orders.",
    "The committee reviewed the budget and approved the plan for the next quarter.",
    "Sales of the premium range grew faster than those of the standard range.",
    "The company intends to hire twelve engineers over the coming six months.",
    "All notices under this agreement shall be sent to the addresses listed above.",
    "Inventory levels were kept low to reduce storage costs during the slow season.",
)
_CODE = (
    "class OrderService:",
    "    def __init__(self, repository, cache, clock):",
    "        self.repository = repository",
    "        self.cache = cache",
    "        self.clock = clock",
    "    def place(self, customer_id, items):",
    "        order = {'customer': customer_id, 'items': list(items), 'at': self.clock()}",
    "        self.cache[customer_id] = order",
    "        return self.repository.save(order)",
    "    def total(self, order):",
    "        return sum(item['price'] * item['quantity'] for item in order['items'])",
    "def load_orders(path):",
    "    with open(path) as handle:",
    "        return [parse_line(line) for line in handle if line.strip()]",
    "import json",
    "from datetime import datetime, timezone",
)


@dataclass(frozen=True)
class Case:
    id: str
    tier: str
    split: str
    endpoint: str
    body: dict[str, Any]


def load(path: Path = LABELLED) -> list[Case]:
    cases = []
    for line in path.read_text().splitlines():
        if line.strip():
            row = orjson.loads(line)
            body = _expand(row["body"], random.Random(row["id"]))
            cases.append(Case(row["id"], row["tier"], row["split"], row["endpoint"], body))
    return cases


def _expand(value: Any, rnd: random.Random) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, rnd) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, rnd) for v in value]
    if isinstance(value, str) and "{{" in value:
        return _MARK.sub(lambda m: _fill(m.group(1), int(m.group(2)), rnd), value)
    return value


def _fill(kind: str, count: int, rnd: random.Random) -> str:
    if kind == "code":
        return "\n".join(_CODE[i % len(_CODE)] for i in range(count))
    words: list[str] = []
    while len(words) < count:
        words += rnd.choice(_PROSE).split()
    return " ".join(words[:count])


@dataclass
class Accuracy:
    """Per tier: cases labelled with it, and how many the classifier put there."""

    total: Counter[str]
    right: Counter[str]
    confusion: Counter[tuple[str, str]]  # (label, predicted)

    def of(self, tier: str) -> float:
        return self.right[tier] / self.total[tier] if self.total[tier] else 1.0

    @property
    def overall(self) -> float:
        count = sum(self.total.values())
        return sum(self.right.values()) / count if count else 1.0

    def misses(self) -> list[tuple[str, str]]:
        return sorted((label, got) for (label, got), n in self.confusion.items()
                      for _ in range(n) if label != got)


def score(classify: Callable[[Case], str], cases: list[Case]) -> Accuracy:
    accuracy = Accuracy(Counter(), Counter(), Counter())
    for case in cases:
        got = classify(case)
        accuracy.total[case.tier] += 1
        accuracy.right[case.tier] += got == case.tier
        accuracy.confusion[(case.tier, got)] += 1
    return accuracy
