"""Precision and recall per entity on the labelled corpus (tests/fixtures/pii_corpus.txt),
held above a floor. `python -m bench.privacy` prints the same table, and Presidio's."""

from __future__ import annotations

import pytest

from bench.privacy_corpus import ENTITIES, Score, load, score
from sidecar.config.privacy import RedactSettings
from sidecar.privacy.redactor import Scanner

FLOOR = 0.97  # each entity, precision and recall


@pytest.fixture(scope="module")
def scores() -> dict[str, Score]:
    settings = RedactSettings()
    scanner = Scanner(settings.entities, (), settings.phone_regions)
    return score(lambda text: [(f.start, f.end, f.entity) for f in scanner.find(text)], load())


def test_the_corpus_is_big_and_varied() -> None:
    """At least 150 sentences, every entity labelled at least 6 times, and look-alikes."""
    sentences = load()
    assert len(sentences) >= 150
    labels = [entity for s in sentences for _, _, entity in s.labels]
    assert {entity: labels.count(entity) >= 6 for entity in ENTITIES} == dict.fromkeys(
        ENTITIES, True)
    assert sum(1 for s in sentences if not s.labels) >= 60


@pytest.mark.parametrize("entity", ENTITIES)
def test_precision_and_recall_hold_the_floor(scores: dict[str, Score], entity: str) -> None:
    """Per entity: what is found is right (precision) and what is there is found (recall)."""
    result = scores[entity]
    assert result.precision >= FLOOR, result.false_positives
    assert result.recall >= FLOOR, result.misses
