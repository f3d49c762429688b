"""Validators: a candidate the patterns found becomes a finding only if its checksum or its
numbering rules say it is real. This is where precision comes from (tests/fixtures has the
corpus that measures it): a 16-digit order number passes the pattern, not Luhn plus an issuer
prefix; `05.03.2024` is a valid German phone number to `phonenumbers`, so dates are refused
before it is asked.

The arithmetic checks (Luhn, IBAN mod-97, the SSA's SSN rules) are a few stable lines each;
the numbering plans of 240 countries are not, so phones go to Google's `phonenumbers`.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re

import orjson
import phonenumbers
from phonenumbers import NumberParseException

# ISO 13616 registry: IBAN length by country (SWIFT IBAN registry, release 99, 2025).
_IBAN_REGISTRY = (
    "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 "
    "DE22 DJ27 DK18 DO28 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 "
    "GT28 HN28 HR21 HU28 IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 "
    "LU20 LV21 LY25 MC27 MD24 ME22 MK19 MN20 MR27 MT31 MU30 NI28 NL18 NO15 OM23 PK24 "
    "PL28 PS29 PT25 QA29 RO24 RU33 SA24 SC31 SD18 SE24 SI19 SK24 SM27 SO23 ST25 SV28 "
    "TL23 TN24 TR26 UA29 VA22 VG24 XK20 YE30")
_IBAN_LENGTHS = {entry[:2]: int(entry[2:]) for entry in _IBAN_REGISTRY.split(" ")}
# Numbers the SSA never issues although the rules allow them (advertising and misuse cases).
_SSN_NEVER = frozenset({"078051120", "219099999", "457555462"})
# "Top-level domains" that are really file extensions: `icon@2x.png` is an asset, not a mailbox.
_FILE_SUFFIXES = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif",
                            "tiff", "avif", "heic", "pdf", "mp3", "mp4", "wav", "webm"})
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
_TLD = re.compile(r"(?:[A-Za-z]{2,24}|xn--[A-Za-z0-9-]{1,59})\Z")
# dd.mm.yyyy, yyyy-mm-dd, dd/mm/yy: dates that numbering plans would accept as phones.
_DATE = re.compile(r"\(?\d{1,4}\)?[./ -]\d{1,2}[./ -]\d{2,4}\Z")


def luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_issuer_ok(digits: str) -> bool:
    """An issuer prefix (IIN) and a length some network uses: Visa, Mastercard, Amex,
    Discover, JCB, Diners, UnionPay, Maestro. ISBNs (978...) and most ids fail here."""
    n = len(digits)
    two, four = int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return 14 <= n <= 19
    if 3528 <= four <= 3589 or digits.startswith(("6011", "65", "62")) or 644 <= int(
            digits[:3]) <= 649:
        return 16 <= n <= 19
    return two in (50, 56, 57, 58) and 12 <= n <= 19


def card_ok(raw: str) -> bool:
    digits = raw.replace(" ", "").replace("-", "")
    if not 13 <= len(digits) <= 19 or not card_issuer_ok(digits) or not luhn(digits):
        return False
    groups = re.split(r"[ -]", raw)
    if len(groups) == 1:
        return True
    # Printed cards group as 4-4-4-4(-3), 4-6-5 (Amex) or 4-6-4 (Diners); other groupings are
    # account or order numbers that happen to pass Luhn (one in ten does).
    sizes = [len(g) for g in groups]
    return (all(s == 4 for s in sizes[:-1]) and 1 <= sizes[-1] <= 4) or sizes in (
        [4, 6, 5], [4, 6, 4])


def iban_ok(raw: str) -> bool:
    compact = raw.replace(" ", "")
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def ssn_ok(raw: str) -> bool:
    """SSA rules: area 001-899 but not 666, group 01-99, serial 0001-9999."""
    digits = raw.replace("-", "").replace(" ", "")
    area, group, serial = int(digits[:3]), digits[3:5], digits[5:]
    return (0 < area < 900 and area != 666 and group != "00" and serial != "0000"
            and digits not in _SSN_NEVER)


def ip_ok(raw: str) -> bool:
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        return False
    return True


def email_ok(local: str, domain: str) -> bool:
    if not local or local[0] == "." or local[-1] == "." or ".." in local:
        return False
    labels = domain.split(".")
    if len(labels) < 2 or labels[-1].lower() in _FILE_SUFFIXES or not _TLD.match(labels[-1]):
        return False
    return all(_LABEL.match(label) for label in labels)


def jwt_ok(token: str) -> bool:
    """A JWT's header is base64url JSON naming its algorithm."""
    header = token.split(".", 1)[0]
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


def phone_ok(raw: str, regions: tuple[str, ...]) -> bool:
    """`+`/`00` numbers are checked against every country's plan; national ones against the
    configured regions, and only if they do not read as a date."""
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    if raw.startswith("+"):
        return _valid(raw, None)
    if _DATE.match(raw):
        return False
    return any(_valid(raw, region) for region in regions)


def _valid(raw: str, region: str | None) -> bool:
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))


def warm_phone_metadata(regions: tuple[str, ...]) -> None:
    """phonenumbers loads a region's plan on first use (about 1 ms each): pay it at start."""
    for region in regions:
        _valid("0", region)
    _valid("+14155552671", None)
