"""The labelled redaction corpus (tests/fixtures/pii_corpus.txt) and its scoring.

Kept free of the sidecar's imports (stdlib only) so that the Presidio comparison can run it in
Presidio's own virtualenv. A sentence marks each value as `{{TYPE|value}}`; `\\n` in a line is
a newline. Scoring is per entity type: a found span counts as a true positive when it overlaps
an unclaimed labelled span of the same type; a labelled span nobody found is a miss.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "pii_corpus.txt"
ENTITIES = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "SECRET")
_MARK = re.compile(r"\{\{([A-Z_]+)\|(.*?)\}\}")

Span = tuple[int, int, str]  # start, end, entity
Detect = Callable[[str], Iterable[Span]]


@dataclass(frozen=True)
class Sentence:
    text: str
    labels: tuple[Span, ...]


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    false_positives: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def load(path: Path = CORPUS) -> list[Sentence]:
    sentences = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        text, labels, last = "", [], 0
        for match in _MARK.finditer(line):
            text += _unescape(line[last:match.start()])
            value = _unescape(match.group(2))
            labels.append((len(text), len(text) + len(value), match.group(1)))
            text += value
            last = match.end()
        sentences.append(Sentence(text + _unescape(line[last:]), tuple(labels)))
    return sentences


def _unescape(text: str) -> str:
    return text.replace("\\n", "\n")


def score(detect: Detect, sentences: list[Sentence]) -> dict[str, Score]:
    scores = {entity: Score() for entity in ENTITIES}
    for sentence in sentences:
        claimed: set[int] = set()
        for start, end, entity in detect(sentence.text):
            if entity not in scores:
                continue
            hit = next((i for i, (s, e, t) in enumerate(sentence.labels)
                        if t == entity and i not in claimed and s < end and start < e), None)
            if hit is None:
                scores[entity].fp += 1
                scores[entity].false_positives.append(f"{sentence.text[start:end]!r} in "
                                                      f"{sentence.text!r}")
            else:
                claimed.add(hit)
                scores[entity].tp += 1
        for i, (start, end, entity) in enumerate(sentence.labels):
            if i not in claimed:
                scores[entity].fn += 1
                scores[entity].misses.append(f"{sentence.text[start:end]!r} in "
                                             f"{sentence.text!r}")
    return scores
