"""Model-name globs (`openai/*`, `*-mini`), as config uses them for keys, providers and prices.

Patterns compile once, at start-up, into one regular expression; `*` matches any run of
characters, `/` included (fnmatch's rules, case-sensitive on every platform).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


class Globs:
    __slots__ = ("_regex", "patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        joined = "|".join(f"(?:{fnmatch.translate(p)})" for p in self.patterns)
        self._regex = re.compile(joined or r"(?!)")

    def match(self, name: str) -> bool:
        return self._regex.match(name) is not None

    __call__ = match

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Globs) and other.patterns == self.patterns

    def __hash__(self) -> int:
        return hash(self.patterns)

    def __repr__(self) -> str:
        return f"Globs({list(self.patterns)!r})"


def first_match(name: str, table: Iterable[tuple[Globs, T]]) -> T | None:
    """The value of the first (globs, value) pair whose globs match `name`."""
    for globs, value in table:
        if globs.match(name):
            return value
    return None
