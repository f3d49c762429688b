"""Agreement of two answers: exact after normalising whitespace and case; word-set Jaccard."""

from __future__ import annotations

import pytest

from sidecar.compare.agreement import MAX_CHARS, exact_match, similarity


@pytest.mark.parametrize(("a", "b", "exact"), [
    ("Paris.", "paris.", True),
    ("The  capital\n is Paris", "the capital is paris", True),
    ("Paris", "Paris.", False),
    ("", "   ", True),
])
def test_exact_match_ignores_whitespace_and_case(a: str, b: str, exact: bool) -> None:
    """Runs of whitespace and letter case do not count; anything else does."""
    assert exact_match(a, b) is exact


@pytest.mark.parametrize(("a", "b", "score"), [
    ("the cat sat", "sat the cat", 1.0),
    ("the cat sat", "the dog sat", 0.5),
    ("alpha beta", "gamma delta", 0.0),
    ("", "", 1.0),
    ("Hello, world!", "hello world", 1.0),
])
def test_similarity_is_the_jaccard_index_of_the_word_sets(a: str, b: str, score: float) -> None:
    """Shared words over all words, punctuation and case aside, order ignored."""
    assert similarity(a, b) == score


def test_long_answers_are_read_up_to_the_bound() -> None:
    """Past MAX_CHARS of each answer nothing is read: two answers that differ only beyond it
    agree fully."""
    same = "word " * (MAX_CHARS // 5)
    assert exact_match(same + "tail one", same + "other end")
    assert similarity(same + " zebra", same + " yak") == 1.0
