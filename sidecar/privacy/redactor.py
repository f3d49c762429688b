"""Find every value in a text in one scan, then replace them: `[EMAIL]` (mask) or `<EMAIL_1>`
(pseudonymize, reversible within the request).

`Scanner` is built once at start-up (every pattern compiled there) and shared by all requests;
`Redaction` is one request's state: the counts by entity and, when pseudonymizing, which
placeholder stands for which value. It lives as long as the request and nowhere else.

Overlaps (a JWT that is also a `"token": …` value, a custom pattern over a phone number) are
resolved by priority, then length: custom patterns (the operator asked for them by name) beat
known secret shapes, which beat the other entities.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sidecar.privacy import checks
from sidecar.privacy.detectors import (
    ANCHOR_GUARDS,
    Branch,
    PhoneRules,
    Span,
    branches,
    url_password,
)
from sidecar.privacy.keywords import KeywordRules

PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
_CUSTOM, _SECRET, _OTHER = 3, 2, 1


@dataclass(frozen=True, slots=True)
class Finding:
    start: int
    end: int
    entity: str
    priority: int


class Scanner:
    def __init__(self, entities: Sequence[str], custom: Sequence[tuple[str, str]] = (),
                 phone_regions: Sequence[str] = ()) -> None:
        self.entities = frozenset(entities)
        regions = tuple(phone_regions)
        table = branches(self.entities, PhoneRules(regions))
        if "SECRET" in self.entities and "EMAIL" in self.entities:
            # `scheme://user:password@host`: tried at each `@` before the email shape.
            table.insert(0, Branch("SECRET", "@", r"(?<=[^\s/@]@)",
                                   lambda text, at, end: url_password(text, at)))
        self._table = table
        self._priority = [_SECRET if b.entity == "SECRET" else _OTHER for b in table]
        pattern, self._names = _scan_pattern(table)
        self._scan = re.compile(pattern) if table else None
        self._alone = [re.compile(f"[{b.starts or b.anchor}]{ANCHOR_GUARDS.get(b.anchor, '')}"
                                  f"{b.guard}(?:{b.rest})") for b in table]
        self._later = [[j for j in range(i + 1, len(table)) if table[j].anchor == b.anchor]
                       for i, b in enumerate(table)]
        self._keywords = KeywordRules() if "SECRET" in self.entities else None
        self._custom = [(name, re.compile(pattern)) for name, pattern in custom]
        if "PHONE" in self.entities:
            checks.warm_phone_metadata(regions)

    def find(self, text: str) -> list[Finding]:
        """Every value in `text`, sorted, without overlaps."""
        found = self._scan_anchors(text) if self._scan is not None else []
        extra: list[Finding] = []
        if self._keywords is not None:
            extra += [Finding(s, e, "SECRET", _SECRET) for s, e in self._keywords.find(text)]
        for name, pattern in self._custom:
            extra += [Finding(m.start(), m.end(), name, _CUSTOM)
                      for m in pattern.finditer(text) if m.end() > m.start()]
        if extra:
            found += extra
            found.sort(key=lambda f: f.start)
        return _without_overlaps(found) if len(found) > 1 else found

    def _scan_anchors(self, text: str) -> list[Finding]:
        assert self._scan is not None
        search = self._scan.search
        found: list[Finding] = []
        pos = 0
        while (match := search(text, pos)) is not None:
            anchor = match.start()
            index = self._names[match.lastgroup]  # type: ignore[index]  # always a b<N> group
            finding = self._accepted(text, index, anchor, match.end())
            if finding is None:
                # No valid number starts here: skip the rest of it too, or the tail of an IBAN
                # with a wrong check digit would pass for a German phone number.
                pos = match.end() if text[anchor].isdigit() else anchor + 1
                continue
            found.append(finding)
            pos = max(finding.end, anchor + 1)
        return found

    def _accepted(self, text: str, index: int, anchor: int, end: int) -> Finding | None:
        """The hit if its validator agrees; else the next shape that fits at the same place
        (a 14-digit `0044 20 7946 0958` fails as a card, then passes as a phone)."""
        span: Span | None = self._table[index].accept(text, anchor, end)
        if span is None:
            for later in self._later[index]:
                match = self._alone[later].match(text, anchor)
                if match is not None:
                    span = self._table[later].accept(text, anchor, match.end())
                    if span is not None:
                        index = later
                        break
            else:
                return None
        assert span is not None
        return Finding(span[0], span[1], self._table[index].entity, self._priority[index])


def _scan_pattern(table: list[Branch]) -> tuple[str, dict[str, int]]:
    """`(?:0(?:…)|1(?:…)|…|@(?:…)|-(?:…))`: one alternative per anchor character, each led by
    that literal character. `re` turns a set of literal-led alternatives into one character
    set to skip to in C, and tries an alternative only if its character is the one found,
    without a lookbehind (a JSON document's digits cost 40 ns each this way, not 130).

    Returns the pattern and, for each group name, the index of its branch."""
    names: dict[str, int] = {}
    alternatives: list[str] = []
    chars = dict.fromkeys(c for b in table for c in _expand(b.anchor))
    for char in chars:
        guarded: dict[str, list[str]] = {}
        for i, branch in enumerate(table):
            if char in _expand(branch.anchor) and (not branch.starts or char in branch.starts):
                name = f"b{i}_{len(alternatives)}"
                names[name] = i
                guarded.setdefault(branch.guard, []).append(f"(?P<{name}>{branch.rest})")
        shapes = "|".join(f"{guard}(?:{'|'.join(group)})" for guard, group in guarded.items())
        guard = next((g for a, g in ANCHOR_GUARDS.items() if char in _expand(a)), "")
        alternatives.append(f"{re.escape(char)}{guard}(?:{shapes})")
    return "(?:" + "|".join(alternatives) + ")", names


def _expand(anchor: str) -> list[str]:
    """The characters of a character-class body: "0-9" → 0…9, "\\-" → -."""
    if anchor == "0-9":
        return list("0123456789")
    return [anchor.removeprefix("\\")]


def _without_overlaps(found: list[Finding]) -> list[Finding]:
    out: list[Finding] = []
    for finding in found:
        if out and finding.start < out[-1].end:
            last = out[-1]
            if (finding.priority, finding.end - finding.start) > (last.priority,
                                                                  last.end - last.start):
                out[-1] = finding
            continue
        out.append(finding)
    return out


class Redaction:
    """One request's redactions. `originals` maps each placeholder to the value it hides."""

    __slots__ = ("_by_value", "_numbers", "_pseudonymize", "_reserved", "_scanner", "counts",
                 "originals")

    def __init__(self, scanner: Scanner, *, pseudonymize: bool) -> None:
        self._scanner = scanner
        self._pseudonymize = pseudonymize
        self.counts: Counter[str] = Counter()
        self.originals: dict[str, str] = {}
        self._by_value: dict[tuple[str, str], str] = {}
        self._numbers: Counter[str] = Counter()
        self._reserved: set[str] = set()

    def reserve(self, text: str) -> None:
        """Placeholder-shaped text the client sent itself: never reused for a value, so that
        restoring the answer cannot turn the client's own `<EMAIL_1>` into someone's email."""
        if "<" in text:
            self._reserved.update(PLACEHOLDER.findall(text))

    def redact(self, text: str) -> str:
        found = self._scanner.find(text)
        if not found:
            return text
        parts: list[str] = []
        last = 0
        for finding in found:
            parts.append(text[last:finding.start])
            parts.append(self._replacement(finding.entity, text[finding.start:finding.end]))
            last = finding.end
        parts.append(text[last:])
        return "".join(parts)

    def _replacement(self, entity: str, value: str) -> str:
        self.counts[entity] += 1
        if not self._pseudonymize:
            return f"[{entity}]"
        placeholder = self._by_value.get((entity, value))
        if placeholder is None:
            while True:
                self._numbers[entity] += 1
                placeholder = f"<{entity}_{self._numbers[entity]}>"
                if placeholder not in self._reserved:
                    break
            self._by_value[entity, value] = placeholder
            self.originals[placeholder] = value
        return placeholder
