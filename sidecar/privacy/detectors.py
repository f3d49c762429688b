"""What each entity looks like: one scan pattern for all of them, then a validator per hit.

Speed is the design constraint (≤ 0.3 ms for an 8 KB prompt with every entity on). Python's
`re` tries every alternative at every position, unless each alternative starts with a literal
character: then it skips in C to the next such character and tries only the alternatives that
start with it. So every entity is written as an *anchor* (one rare character: `@`, a digit,
`+`, `(`, `-`, `_`, `.`, `:`, `J`, `A`) followed by the rest of its shape; a lookbehind checks
what came before the anchor (the `sk` of `sk-…`, the country letters of an IBAN). Lower-case
prose has almost no anchors, so an 8 KB prompt costs about 20 µs to scan (redactor.py builds
the pattern). Values that start before their anchor (an email's local part, a key's prefix)
are extended backwards once found.

Keyword rules (`password=…`, `api_key: …`, `Bearer …`) cannot be anchored on a rare character,
so they are literal scans of the lower-cased text (`re` finds a literal prefix in C too), in
`keywords.py`. Custom patterns from the config run as they are, one pass each.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sidecar.privacy import checks

Span = tuple[int, int]
# (text, anchor index, match end) -> the value's span, or None when the hit is not valid
Accept = Callable[[str, int, int], Span | None]

_EMAIL_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
_HEX_COLON = frozenset("0123456789abcdefABCDEF:")
_KEY_PREFIX = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_URL_CREDENTIALS = re.compile(r"://[^\s/@:]{1,128}:([^\s/@]{1,256})\Z")
# Words right before a number that make it an identifier, not a phone (national formats only).
_NOT_PHONE = re.compile(r"(?:order|invoice|sku|part|item|ref|reference|ticket|case|tracking|"
                        r"account|acct|isbn|serial|model|po|id|no|nr|#)\W{0,3}(?:no|nr|number|"
                        r"#|id)?\W{0,3}\Z")
_PHONE_WORDS = re.compile(r"(?:phone|tel|telephone|mobile|cell|call|fax|whatsapp|sms|text|"
                          r"dial|reach)\b")
_VERSION_WORDS = re.compile(r"(?:version|ver|build|release|rev|revision|firmware|v)\W{0,2}\Z")

# The numeric shapes: not inside a longer token, not an ISO date, and at least an IPv4 address
# or 7 digits long (checked once per number: a JSON document's ids, prices and timestamps
# cost a lookaround each, not a try of every shape).
NUMERIC = r"(?<![\w.\-+]\d)(?!\d{3}-[01]\d-[0-3]\d)(?=\d{0,2}\.\d|(?:[ .\-/()]?\d){6})"
_NUM_RIGHT = r"(?!\w|[.\-]\d)"
# Checked first at every anchor character, for all its shapes: most anchors in code and JSON
# (a digit inside a number, the `-` of `item-0` or of a date, the `:` after a JSON key) fail
# here, in one lookaround, instead of in each shape's own lookbehinds (0.25 ms less per 8 KB
# of JSON).
ANCHOR_GUARDS = {
    "0-9": r"(?<!\d\d)",
    r"\-": r"(?=[A-Za-z0-9_\-]{9})",
    "_": r"(?=[A-Za-z0-9_]{20})",
    ".": r"(?<=[a-z0-9]\.)(?=[A-Za-z0-9_\-])",
    ":": r"(?<=[0-9A-Fa-f:]:)",
}


@dataclass(frozen=True, slots=True)
class Branch:
    entity: str
    anchor: str  # the body of a character class: the scan stops only at these characters
    rest: str  # the shape after the anchor; its lookbehinds see the anchor and what precedes
    accept: Accept
    guard: str = ""  # checked once for all the branches that share it and the anchor
    starts: str = ""  # the anchor characters this shape can start with (empty: all)


def _walk_back(text: str, index: int, chars: frozenset[str], limit: int) -> int:
    stop = max(0, index - limit)
    while index > stop and text[index - 1] in chars:
        index -= 1
    return index


def _email(text: str, at: int, end: int) -> Span | None:
    start = _walk_back(text, at, _EMAIL_LOCAL, 64)
    if checks.email_ok(text[start:at], text[at + 1:end]):
        return start, end
    return None


def url_password(text: str, at: int) -> Span | None:
    """`scheme://user:password@host`: the password's span, found from its `@`."""
    match = _URL_CREDENTIALS.search(text, max(0, at - 400), at)
    return match.span(1) if match else None


def _secret(check: Callable[[str], bool] | None = None) -> Accept:
    """Known key shapes: the value starts at its prefix (`sk-`, `ghp_`, `xoxb-`)."""
    def accept(text: str, anchor: int, end: int) -> Span | None:
        start = _walk_back(text, anchor, _KEY_PREFIX, 16)
        if check is not None and not check(text[start:end]):
            return None
        return start, end
    return accept


def _has_digit(value: str) -> bool:
    return any(c.isdigit() for c in value)


def _checked(check: Callable[[str], bool], back: int = 0) -> Accept:
    def accept(text: str, anchor: int, end: int) -> Span | None:
        start = anchor - back
        return (start, end) if check(text[start:end]) else None
    return accept


def _ip4(text: str, anchor: int, end: int) -> Span | None:
    before = text[max(0, anchor - 12):anchor].lower()
    if _VERSION_WORDS.search(before) or not checks.ip_ok(text[anchor:end]):
        return None
    return anchor, end


def _ip6(text: str, anchor: int, end: int) -> Span | None:
    start = _walk_back(text, anchor, _HEX_COLON, 39)
    while end > anchor and text[end - 1] == ".":
        end -= 1
    if (start and (text[start - 1].isalnum() or text[start - 1] in "_.")) or (
            end < len(text) and (text[end].isalnum() or text[end] == "_")):
        return None
    value = text[start:end]
    # `a[1::2]` is a valid address to the parser; real ones have a group of 3+ hex digits.
    if not any(len(group) >= 3 for group in value.split(":")) or not checks.ip_ok(value):
        return None
    return start, end


class PhoneRules:
    """Phones: international (`+`, `00`) numbers anywhere; national ones in the configured
    regions' formats, unless the words before them name an order, an invoice, an ISBN...;
    bare digit runs only after a word such as "phone" or "call"."""

    def __init__(self, regions: tuple[str, ...]) -> None:
        self.regions = regions
        self.nanp = tuple(r for r in regions if r in ("US", "CA"))
        self.trunk = tuple(r for r in regions if r not in ("US", "CA"))

    def international(self, text: str, anchor: int, end: int) -> Span | None:
        return self._trimmed(text, anchor, end, ())

    def national(self, regions: tuple[str, ...]) -> Accept:
        def accept(text: str, anchor: int, end: int) -> Span | None:
            if not regions or _NOT_PHONE.search(text[max(0, anchor - 20):anchor].lower()):
                return None
            return self._trimmed(text, anchor, end, regions)
        return accept

    def bare(self, text: str, anchor: int, end: int) -> Span | None:
        before = text[max(0, anchor - 28):anchor].lower()
        if not _PHONE_WORDS.search(before) or _NOT_PHONE.search(before):
            return None
        return (anchor, end) if checks.phone_ok(text[anchor:end], self.regions) else None

    @staticmethod
    def _trimmed(text: str, start: int, end: int, regions: tuple[str, ...]) -> Span | None:
        """The number, or the number without a trailing group glued on (`…0958 12`)."""
        for _ in range(3):
            if checks.phone_ok(text[start:end], regions):
                return start, end
            cut = max(text.rfind(sep, start, end) for sep in " .-/")
            if cut <= start + 6:
                return None
            end = cut
        return None


def branches(entities: frozenset[str], phone: PhoneRules) -> list[Branch]:
    """The scan's alternatives, in priority order for hits at the same position."""
    table: list[Branch] = []
    add = table.append
    if "EMAIL" in entities:
        add(Branch("EMAIL", "@", r"(?<=[\w.%+\-]@)[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
                                 r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)+", _email))
    if "IBAN" in entities:
        add(Branch("IBAN", "0-9", r"(?<=[A-Z]{2}\d)(?<![A-Za-z0-9][A-Z]{2}\d)\d"
                                  r"(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])",
                   _checked(checks.iban_ok, back=2)))
    if "IP_ADDRESS" in entities:
        add(Branch("IP_ADDRESS", "0-9", r"\d{0,2}(?:\.\d{1,3}){3}(?!\w|\.\d)", _ip4, NUMERIC))
        # Eight groups, or a `::`: `14:22:01` and MAC addresses fail here, in C.
        add(Branch("IP_ADDRESS", ":", r"(?<=[0-9A-Fa-f]:)(?:[0-9A-Fa-f]{1,4}:){6}[0-9A-Fa-f]{1,4}|"
                                      r"(?<=[0-9A-Fa-f:]:)(?=:|[0-9A-Fa-f:]{0,30}::)"
                                      r"[0-9A-Fa-f:.]{1,40}", _ip6))
    if "US_SSN" in entities:
        add(Branch("US_SSN", "0-9", r"\d{2}(?:-\d{2}-| \d{2} )\d{4}" + _NUM_RIGHT,
                   _checked(checks.ssn_ok), NUMERIC))
    if "CREDIT_CARD" in entities:
        add(Branch("CREDIT_CARD", "0-9", r"(?:[ \-]?\d){12,18}" + _NUM_RIGHT,
                   _checked(checks.card_ok), NUMERIC))
    if "PHONE" in entities:
        group = r"(?:[ .\-/]?(?:\(\d{1,5}\)|\d))"
        add(Branch("PHONE", "+", r"(?<![\w+]\+)\d" + group + "{6,16}" + _NUM_RIGHT,
                   phone.international))
        add(Branch("PHONE", "0-9", r"0[1-9]" + group + "{6,15}" + _NUM_RIGHT,
                   phone.international, NUMERIC, starts="0"))
        add(Branch("PHONE", "0-9", r"(?:(?<=1)[ .\-](?:\d{3}[ .\-]|\(\d{3}\) ?)|"
                                   r"\d{2}[ .\-])\d{3}[ .\-]\d{4}" + _NUM_RIGHT,
                   phone.national(phone.nanp), NUMERIC))
        add(Branch("PHONE", "(", r"(?<![\w(]\()\d{3}\) ?\d{3}[ .\-]\d{4}" + _NUM_RIGHT,
                   phone.national(phone.nanp)))
        trunk = r"\d{1,4}(?:[ .\-/]|\) ?)\d{2,8}(?:[ .\-]\d{2,4}){0,4}" + _NUM_RIGHT
        add(Branch("PHONE", "0-9", trunk, phone.national(phone.trunk), NUMERIC, starts="0"))
        add(Branch("PHONE", "(", r"(?<![\w(]\()0" + trunk, phone.national(phone.trunk)))
        add(Branch("PHONE", "0-9", r"\d{6,14}" + _NUM_RIGHT, phone.bare, NUMERIC))
    if "SECRET" in entities:
        _secret_branches(add)
    return table


def _after(*prefixes: str) -> str:
    """A lookbehind for any of these literal prefixes (each its own fixed-width lookbehind)."""
    return "(?:" + "|".join(f"(?<={re.escape(p)})" for p in prefixes) + ")"


def _secret_branches(add: Callable[[Branch], None]) -> None:
    tail = r"(?![A-Za-z0-9_\-])"
    # OpenAI (sk-, sk-proj-), Anthropic (sk-ant-api03-), OpenRouter (sk-or-v1-) and most others.
    add(Branch("SECRET", r"\-", r"(?<=sk-)(?<![A-Za-z0-9_\-]sk-)[A-Za-z0-9_\-]{20,300}" + tail,
               _secret(_has_digit)))
    add(Branch("SECRET", "_", _after("ghp_", "gho_", "ghu_", "ghs_", "ghr_")
               + r"[A-Za-z0-9]{36,255}" + tail, _secret()))
    add(Branch("SECRET", "_", r"(?<=github_pat_)[A-Za-z0-9_]{50,255}" + tail, _secret()))
    add(Branch("SECRET", r"\-", _after("glpat-", "gldt-", "glrt-", "glptt-", "glcbt-", "glft-",
                                        "glimt-", "glsoat-") + r"[A-Za-z0-9_\-]{20,255}" + tail,
               _secret()))
    add(Branch("SECRET", r"\-", _after("xoxb-", "xoxp-", "xoxa-", "xoxo-", "xoxs-", "xoxr-",
                                        "xoxe-", "xapp-") + r"[A-Za-z0-9\-]{10,255}" + tail,
               _secret()))
    add(Branch("SECRET", ".", r"(?<=hooks\.)slack\.com/services/[A-Za-z0-9_/\-]{20,200}",
               _secret()))
    add(Branch("SECRET", "_", _after("sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_")
               + r"[A-Za-z0-9]{20,255}" + tail, _secret()))
    add(Branch("SECRET", "A", r"(?<![A-Za-z0-9]A)(?<=A)(?:KIA|SIA|BIA|CCA|GPA|IDA|ROA|IPA|NPA|"
                              r"NVA|PKA)[A-Z2-7]{16}(?![A-Za-z0-9])", _secret()))
    add(Branch("SECRET", "A", r"(?<![A-Za-z0-9]A)(?<=A)Iza[0-9A-Za-z_\-]{35}" + tail, _secret()))
    add(Branch("SECRET", r"\-", r"(?<=GOCSPX-)[A-Za-z0-9_\-]{20,40}" + tail, _secret()))
    add(Branch("SECRET", ".", r"(?<=ya29\.)[A-Za-z0-9_\-]{20,2048}" + tail, _secret()))
    add(Branch("SECRET", "J", r"(?<=eyJ)(?<![A-Za-z0-9_\-]eyJ)[A-Za-z0-9_\-]{6,4096}\.eyJ"
                              r"[A-Za-z0-9_\-]{6,8192}\.[A-Za-z0-9_\-]{0,2048}" + tail,
               _secret(checks.jwt_ok)))
    add(Branch("SECRET", r"\-", r"(?<!--)----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?"
                                r"-----(?:[\s\S]{16,16384}?-----END [A-Z0-9 ]*PRIVATE KEY"
                                r"(?: BLOCK)?-----|"
                                r"[A-Za-z0-9+/=\s]{16,16384})", _checked(lambda _: True)))
