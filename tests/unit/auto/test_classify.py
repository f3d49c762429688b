"""Features from what a request is: token estimates, code, maths, asks and the windows that
keep a pasted document's words from counting as the ask."""

from __future__ import annotations

import pytest

from sidecar.auto.classify import Features, features
from sidecar.auto.shapes import Shape


def of(task: str, **fields: object) -> Features:
    return features(Shape(texts=[task], task=task, messages=1, **fields))  # type: ignore[arg-type]


def test_token_estimate_errs_high_for_ascii_and_counts_cjk_per_character() -> None:
    """ASCII at 3.5 characters a token (English is about 4); other text at 3 UTF-8 bytes a
    token, so a CJK character is about one token."""
    assert of("a" * 350).tokens == 100
    assert of("漢" * 100).tokens == 100
    assert of("a" * 350).chars == 350


@pytest.mark.parametrize(("task", "code"), [
    ("What is python?", 1),
    ("Write a python script that renames files", 2),
    ("Why does this fail?\n```\nx = 1\n```", 2),
    ("Fix this bug in my python code:\n```python\ndef f():\n    return 1\n```", 3),
    ("def main():\n    import os\n    return os.getcwd()", 2),
    ("How do I bake bread?", 0),
])
def test_code_score(task: str, code: int) -> None:
    """Pasted code counts 2, a language or a coding verb 1 more; both without a paste, 2."""
    assert of(task).code == code


@pytest.mark.parametrize(("task", "least"), [
    ("Prove that there are infinitely many primes.", 5),
    ("How many ways can 5 people stand in a line?", 3),
    ("A car drives 60 km at 90 km/h then 40 km at 50 km/h. How long does it take?", 2),
    ("What's 15% of 80?", 0),
])
def test_maths_score(task: str, least: int) -> None:
    """Proof words, maths phrases and word problems raise the maths score; plain arithmetic
    does not."""
    score = of(task).math
    assert score >= least and (least > 0 or score == 0)


def test_asks_are_read_at_the_ends_of_a_long_paste() -> None:
    """A long document's own words (here: analysis and proof words) do not count as the ask;
    the instruction before it and a short last line do."""
    document = "We must analyze, compare and prove the design of the plan. " * 400
    pasted = of("Summarize this:\n\n" + document)
    assert (pasted.analysis, pasted.math, pasted.compose) == (0, 0, 1)
    asked = of("Summarize this:\n\n" + document + "\nThen compare it with last year.")
    assert asked.analysis == 1


def test_a_fence_anywhere_counts_as_code() -> None:
    """A ``` fence in an earlier message (an ongoing coding session) marks code too."""
    shape = Shape(texts=["```py\nx=1\n```", "thanks, and now?"], task="thanks, and now?")
    assert features(shape).code == 2


def test_steps_brevity_and_writing() -> None:
    """Step-by-step asks, asks for brevity and asks for a piece of writing are noticed."""
    assert of("Think step by step about it").steps
    assert of("Give me a short answer").brief
    assert of("Write an email and a letter to my landlord").compose == 2
