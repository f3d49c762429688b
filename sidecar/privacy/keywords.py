"""Secrets found by the word in front of them: `password=…`, `"api_key": "…"`, `client_secret:
…`, `Authorization: Bearer …`, `--password …`. Only the value is redacted; the name stays, so
the model still knows a password was there.

A keyword cannot be an anchor of the main scan (its letters are everywhere in prose), so each
keyword is a literal-prefix pattern run over the lower-cased text: `re` finds a literal prefix
in C (about 1 µs per 8 KB), and lower-casing keeps every offset for the texts that are not
special-cased by Unicode (checked; the others take the case-insensitive patterns instead).

What counts as a value is where precision is won or lost: `password = os.environ["PW"]`,
`token: ${TOKEN}`, `"password": "***"` and `max_tokens: 512` are not secrets. A bare value
after `:` must hold a digit or a symbol, since `secret: always be kind` is prose.
"""

from __future__ import annotations

import re

from sidecar.privacy.detectors import Span

_SEP = r"[\"']?[ \t]{0,3}(?P<sep>:=|=>|[:=])[ \t]{0,3}"
_VALUE = (r"(?:\"(?P<dq>[^\"\r\n]{1,256})\"|'(?P<sq>[^'\r\n]{1,256})'|"
          r"(?P<bare>[^\s\"',;&<>()\[\]{}]{1,256}))")
_END = r"(?![a-z0-9_])"
_KEYS = ("api_key", "api-key", "apikey", "secret_key", "secret-key", "private_key",
         "private-key", "access_key", "signing_key", "encryption_key", "master_key")
_RULES = (
    r"pass(?:word|wd|phrase)?" + _END + _SEP + _VALUE,  # PGPASSWORD=, MYSQL_PWD= too
    r"pwd" + _END + _SEP + _VALUE,
    r"secret(?<![a-z0-9]secret)" + _END + _SEP + _VALUE,
    r"token(?<![a-z0-9]token)" + _END + _SEP + _VALUE,
    r"key(?:" + "|".join(f"(?<={re.escape(k)})" for k in _KEYS) + ")" + _END + _SEP + _VALUE,
    r"--(?:password|passwd|pass|token|api-key|secret)(?P<sep>[ \t])[ \t]*" + _VALUE,
    r"bearer(?<![a-z0-9]bearer)[ \t]+(?P<token>[a-z0-9._~+/\-]{20,4096}=*)",
    r"authorization[\"']?[ \t]*:[ \t]*basic[ \t]+(?P<token>[a-z0-9+/]{8,1024}=*)",
)
_PLACEHOLDER = re.compile(
    r"(?:\*+|x+|\.+|-+|\?+|<.*>|\$.*|\{\{.*|%s|%\(.*|null|none|nil|true|false|undefined|"
    r"\[?redacted\]?|your[_\- ].*|example|password|secret|token|changeit|xxx.*)\Z",
    re.IGNORECASE)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+\Z|"
                         r"[A-Za-z]*_[A-Za-z_]*\Z|[a-z]+[A-Z][A-Za-z]*\Z")


class KeywordRules:
    def __init__(self) -> None:
        self._lower = tuple(re.compile(rule) for rule in _RULES)
        self._folded = tuple(re.compile(rule, re.IGNORECASE) for rule in _RULES)

    def find(self, text: str) -> list[Span]:
        lowered = text.lower()
        # Lower-casing changes the length of a few characters (İ → i̇): scan the text itself.
        source, rules = (lowered, self._lower) if len(lowered) == len(text) else (
            text, self._folded)
        found: list[Span] = []
        for rule in rules:  # a literal-prefix search each: 2.5 µs per 8 KB, less than `in`
            for match in rule.finditer(source):
                span = _value_span(text, match)
                if span is not None:
                    found.append(span)
        return found


def _value_span(text: str, match: re.Match[str]) -> Span | None:
    groups = match.groupdict()
    if groups.get("token") is not None:
        return match.span("token")
    name = "dq" if groups["dq"] is not None else "sq" if groups["sq"] is not None else "bare"
    start, end = match.span(name)
    value = text[start:end]
    if len(value) < 4 or _PLACEHOLDER.match(value):
        return None
    if name == "bare" and not _bare_value_ok(value, groups["sep"]):
        return None
    return start, end


def _bare_value_ok(value: str, sep: str | None) -> bool:
    if _IDENTIFIER.match(value):  # password = self.password, token: user_token, ...
        return False
    if sep in (":", " ", "\t"):  # prose or a CLI flag: needs a digit or a symbol to be a secret
        return not value.isalpha()
    return True
