"""OpenRouter recognised by its host, and its zero-retention policy merged into the body."""

from __future__ import annotations

import orjson
import pytest

from sidecar.upstream.openrouter import is_openrouter, openrouter_body
from tests.fakes.calls import make_call


@pytest.mark.parametrize(("url", "expected"), [
    ("https://openrouter.ai/api/v1", True), ("https://eu.openrouter.ai/api/v1", True),
    ("https://openrouter.ai.evil.example/v1", False), ("http://127.0.0.1:8080/v1", False),
])
def test_openrouter_hosts(url: str, expected: bool) -> None:
    """Only openrouter.ai and its subdomains get the retention policy."""
    assert is_openrouter(url) is expected


def test_openrouter_body_keeps_the_clients_fields_and_overrides() -> None:
    """The policy is merged into the client's provider object, with per-model overrides and
    the provider's model name applied as usual."""
    call = make_call(body={"model": "a/b", "messages": [], "max_tokens": 900,
                           "provider": {"only": ["x"], "data_collection": "allow"}})
    call.overrides["max_tokens"] = 100
    body = openrouter_body(call, "b")
    assert body is not None
    assert orjson.loads(body) == {"model": "b", "messages": [], "max_tokens": 100, "provider": {
        "only": ["x"], "data_collection": "deny", "zdr": True}}
