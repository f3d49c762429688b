"""Routing suffixes and the body's `provider` object."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.errors import InvalidRequest
from sidecar.upstream.preferences import (
    NO_PREFERENCES,
    Preferences,
    parse_preferences,
    split_suffix,
)


@pytest.mark.parametrize(("model", "expected"), [
    ("openai/gpt-4o", ("openai/gpt-4o", None)),
    ("openai/gpt-4o:floor", ("openai/gpt-4o", "price")),
    ("openai/gpt-4o:nitro", ("openai/gpt-4o", "throughput")),
    ("meta/llama:free:nitro", ("meta/llama:free", "throughput")),  # catalog suffix kept
    ("m:nitro:floor", ("m", "price")),  # chained: the last one wins
    ("llama3:8b", ("llama3:8b", None)),  # an Ollama tag is not a routing suffix
    (":floor", (":floor", None)),  # nothing before it: a name, not a suffix
])
def test_split_suffix(model: str, expected: tuple[str, str | None]) -> None:
    """Routing suffixes leave the name; the last one chained decides the sort."""
    assert split_suffix(model) == expected


def test_parse_full_provider_object() -> None:
    """Every field local providers use, names lower-cased, max_price per token."""
    prefs = parse_preferences({
        "order": ["OpenAI", "b"], "only": ["a"], "ignore": ["c"], "allow_fallbacks": False,
        "sort": {"by": "latency", "partition": "none"}, "max_price": {"prompt": 1, "completion": 2},
        "data_collection": "deny", "zdr": True})
    assert prefs == Preferences(order=("openai", "b"), only=frozenset({"a"}),
                                ignore=frozenset({"c"}), allow_fallbacks=False, sort="latency",
                                max_prompt=1e-6, max_completion=2e-6)
    assert parse_preferences(None) is NO_PREFERENCES
    assert parse_preferences({}) == NO_PREFERENCES


@pytest.mark.parametrize(("value", "param"), [
    ("price", "provider"),
    ({"sort": "cheap"}, "provider.sort"),
    ({"order": "a"}, "provider.order"),
    ({"ignore": [1]}, "provider.ignore"),
    ({"allow_fallbacks": 0}, "provider.allow_fallbacks"),
    ({"max_price": 5}, "provider.max_price"),
    ({"max_price": {"completion": "1"}}, "provider.max_price.completion"),
    ({"max_price": {"prompt": True}}, "provider.max_price.prompt"),
])
def test_bad_provider_fields_name_the_param(value: Any, param: str) -> None:
    """A field of the wrong type is 400 invalid_request naming it."""
    with pytest.raises(InvalidRequest) as caught:
        parse_preferences(value)
    assert caught.value.param == param
