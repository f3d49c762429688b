"""How far two answers agree, cheaply: exact match after normalising whitespace and case, and the
Jaccard similarity of their word sets (words in both / words in either; 1.0 for two empty
answers).

Both read at most `MAX_CHARS` of each answer, so a pair costs a bounded few hundred
microseconds however long the answers (it runs in the shadow runner's task, never on a
client's request). Word sets ignore order and repetition: "the cat sat" and "sat the cat" are
1.0, a paraphrase with other words scores lower. It says whether the candidate answers like
the primary, not which is right; a judge model scores that (judge.py).
"""

from __future__ import annotations

import re

MAX_CHARS = 20_000  # of each answer: about 3,500 English words
_WORD = re.compile(r"\w+")


def normalized(text: str) -> str:
    return " ".join(text[:MAX_CHARS].lower().split())


def exact_match(a: str, b: str) -> bool:
    return normalized(a) == normalized(b)


def similarity(a: str, b: str) -> float:
    words_a = set(_WORD.findall(a[:MAX_CHARS].lower()))
    words_b = set(_WORD.findall(b[:MAX_CHARS].lower()))
    union = words_a | words_b
    if not union:
        return 1.0
    return len(words_a & words_b) / len(union)
