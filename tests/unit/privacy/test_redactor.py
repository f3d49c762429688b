"""The scanner and a request's redaction: shapes, validators, overlaps, placeholders."""

from __future__ import annotations

import pytest

from sidecar.config.privacy import ENTITIES, RedactSettings
from sidecar.privacy import checks
from sidecar.privacy.redactor import Redaction, Scanner

SETTINGS = RedactSettings()
SCANNER = Scanner(ENTITIES, [("TICKET", r"TCK-\d{4,}"), ("ORDER", r"#\d{8}")],
                  SETTINGS.phone_regions)


def found(text: str, scanner: Scanner = SCANNER) -> list[tuple[str, str]]:
    return [(f.entity, text[f.start:f.end]) for f in scanner.find(text)]


@pytest.mark.parametrize(("text", "expected"), [
    ("a 4111-1111-1111-1111 b", [("CREDIT_CARD", "4111-1111-1111-1111")]),
    ("4111 1111 1111 1111 5555 5555 5555 4444", [("CREDIT_CARD", "4111 1111 1111 1111"),
                                                 ("CREDIT_CARD", "5555 5555 5555 4444")]),
    ("41111 1111 1111 111", []),  # Luhn-valid digits, not a card's grouping
    ("0044 20 7946 0958", [("PHONE", "0044 20 7946 0958")]),  # fails as a card, then phone
    ("+44 20 7946 0958 12", [("PHONE", "+44 20 7946 0958")]),  # a glued group is trimmed
    ("call 415 555 2671.", [("PHONE", "415 555 2671")]),
    ("order no. 415-555-2671", []),
    ("IBAN DE89 3704 0044 0532 0130 01", []),  # wrong check digit, and its tail is no phone
    ("gb29 nwbk 6016 1331 9268 19", []),  # IBANs are written in capitals
    ("v1.2.3.4 and 1.2.3.4", [("IP_ADDRESS", "1.2.3.4")]),
    ("[::1] and fe80::1", [("IP_ADDRESS", "fe80::1")]),
    ("x@y.shape and a@b.T", [("EMAIL", "x@y.shape")]),  # a known false positive (numpy)
    ("https://u:p4ss@host.example/x", [("SECRET", "p4ss")]),  # not an email
    ("TCK-20231 at +1 415 555 2671", [("TICKET", "TCK-20231"), ("PHONE", "+1 415 555 2671")]),
    ("#41555526", [("ORDER", "#41555526")]),
    ('"token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."', [
        ("SECRET", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.")]),
    ("eyJub3QiOiJqd3QifQ.eyJzdWIiOiIxIn0.abc", []),  # the header names no algorithm
    ("İstanbul password=s3cr3t!", [("SECRET", "s3cr3t!")]),  # lower() changes the length
    ("PASSWORD: ${DB_PASSWORD} token=<your token>", []),
    ("use ya29.A0ARrdaM-abcdefghijklmnopqrstuv now", [
        ("SECRET", "ya29.A0ARrdaM-abcdefghijklmnopqrstuv")]),
    ("curl http://10.1.2.3:8080/ and PGPASSWORD=hunter22", [("IP_ADDRESS", "10.1.2.3"),
                                                          ("SECRET", "hunter22")]),
])
def test_scanner_cases(text: str, expected: list[tuple[str, str]]) -> None:
    """Each case: exactly these values, and nothing else."""
    assert found(text) == expected


def test_entities_not_configured_are_not_found() -> None:
    """A scanner for EMAIL alone finds no phone, card or key."""
    only_email = Scanner(["EMAIL"])
    assert found("a@b.example +1 415 555 2671 sk-proj-Ab3dEf6hIj9kLm2nOp5q", only_email) == [
        ("EMAIL", "a@b.example")]


def test_custom_patterns_win_overlaps_and_secrets_beat_other_entities() -> None:
    """Overlapping findings keep the custom pattern, then the secret, then the longest."""
    scanner = Scanner(ENTITIES, [("ACCOUNT", r"acct 4111 1111")])
    assert found("acct 4111 1111 1111 1111", scanner) == [("ACCOUNT", "acct 4111 1111")]
    assert found('password="jane@example.com1"') == [("SECRET", "jane@example.com1")]


@pytest.mark.parametrize(("raw", "ok"), [
    ("536-22-4187", True), ("000-12-3456", False), ("666-12-3456", False),
    ("900-12-3456", False), ("536-00-4187", False), ("536-22-0000", False),
    ("078-05-1120", False),
])
def test_ssn_rules(raw: str, ok: bool) -> None:
    """The SSA's area, group and serial rules, and numbers never issued."""
    assert checks.ssn_ok(raw) is ok


def test_same_value_same_placeholder_and_counts() -> None:
    """Within a request one value has one placeholder; each occurrence counts."""
    redaction = Redaction(SCANNER, pseudonymize=True)
    first = redaction.redact("a@b.example and c@d.example")
    second = redaction.redact("again a@b.example")
    assert (first, second) == ("<EMAIL_1> and <EMAIL_2>", "again <EMAIL_1>")
    assert redaction.counts == {"EMAIL": 3}
    assert redaction.originals == {"<EMAIL_1>": "a@b.example", "<EMAIL_2>": "c@d.example"}


def test_mask_keeps_no_originals() -> None:
    """mask replaces with tags and remembers nothing."""
    redaction = Redaction(SCANNER, pseudonymize=False)
    assert redaction.redact("a@b.example TCK-1234") == "[EMAIL] [TICKET]"
    assert redaction.originals == {}
