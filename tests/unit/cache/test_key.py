"""cache/key.py: the canonical key, its normalisation, exclusions and namespaces."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.cache.key import EXCLUDED, cache_key, canonical, normalised
from tests.fakes.calls import make_call

BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                        "temperature": 0.5}


def key_of(body: dict[str, Any], **fields: Any) -> str:
    headers = fields.pop("headers", {"Authorization": "Bearer sk-1"})
    path, endpoint = fields.pop("path", None), fields.pop("endpoint", None)
    call = make_call(headers, model=body["model"], body=body, **fields)
    call.path, call.endpoint = path or call.path, endpoint or call.endpoint
    return cache_key(call, shared=False).digest


@pytest.mark.parametrize(("value", "expected"), [
    (1.0, 1), (-0.0, 0), (1e2, 100), (0.5, 0.5), (2.0**60, 2.0**60), (True, True),
    ({"a": [1.0, {"b": 2.0}]}, {"a": [1, {"b": 2}]}), ("1.0", "1.0")])
def test_integral_floats_become_integers(value: Any, expected: Any) -> None:
    """1.0, -0.0 and 1e2 are written as integers; strings and bools are left alone."""
    assert normalised(value) == expected
    assert type(normalised(value)) is type(expected)


def test_an_untouched_body_is_not_copied() -> None:
    """Without floats to change, the same objects come back (no copy per request)."""
    body = {"messages": [{"role": "user", "content": "x"}], "n": 1}
    assert normalised(body) is body


def test_canonical_json_sorts_keys_at_every_level() -> None:
    """Key order never matters."""
    assert canonical({"b": 1, "a": {"d": 1.0, "c": 2}}) == b'{"a":{"c":2,"d":1},"b":1}'


def test_the_key_is_32_hex_digits_and_the_header_shows_16() -> None:
    """One blake2b-128 digest; `short` is its first 16 hex digits."""
    call = make_call(model="m", body=BODY)
    key = cache_key(call, shared=False)
    assert len(key.digest) == 32 and int(key.digest, 16) >= 0
    assert key.short == key.digest[:16] and key.model == "m"


@pytest.mark.parametrize("field", sorted(EXCLUDED))
def test_excluded_fields_do_not_change_the_key(field: str) -> None:
    """Each excluded field (stream, user, metadata, provider, ...) leaves the key as it is."""
    assert key_of({**BODY, field: {"any": "value"}}) == key_of(BODY)


def test_responses_keeps_stream_in_the_key() -> None:
    """/responses: a stream and a JSON answer are different entries."""
    def responses(stream: bool) -> str:
        return key_of({"model": "m", "input": "x", "stream": stream},
                      endpoint="responses", path="/responses")
    assert responses(True) != responses(False)


def test_overrides_and_the_candidate_model_are_keyed() -> None:
    """A max_tokens cap in overrides changes the key; the key names call.model (the fallback
    candidate), not the body's model."""
    assert key_of(BODY, overrides={"max_tokens": 10}) != key_of(BODY)
    assert key_of(BODY, overrides={"stream_options": {"include_usage": True}}) == key_of(BODY)
    call = make_call(model="m", body=BODY)
    call.model = "fallback/model"
    assert cache_key(call, shared=False).model == "fallback/model"
    assert cache_key(call, shared=False).digest != key_of(BODY)


def test_identities_namespace_the_key() -> None:
    """Another credential, a local key name, or no credential: another key; shared_namespace
    makes them all one."""
    keys = {key_of(BODY, headers={"Authorization": "Bearer sk-1"}),
            key_of(BODY, headers={"Authorization": "Bearer sk-2"}),
            key_of(BODY, headers={}),
            key_of(BODY, key_name="team-a"), key_of(BODY, key_name="team-b")}
    assert len(keys) == 5
    shared = {cache_key(make_call({"Authorization": a}, model="m", body=BODY),
                        shared=True).digest for a in ("Bearer sk-1", "Bearer sk-2")}
    assert len(shared) == 1


def test_the_path_and_query_are_keyed() -> None:
    """Another endpoint or another query string: another key."""
    assert key_of(BODY, path="/chat/completions?api-version=1") != key_of(BODY)
    assert key_of(BODY, path="/completions", endpoint="completions") != key_of(BODY)
