"""The compare request body: each field checked, each problem a 400 naming the field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sidecar.compare.request import parse_compare
from sidecar.errors import InvalidJSON, InvalidRequest

REQUEST = {"messages": [{"role": "user", "content": "hi"}]}


def parse(body: Any, max_models: int = 3) -> Any:
    return parse_compare(orjson.dumps(body), max_models)


def test_defaults_and_each_models_body() -> None:
    """endpoint defaults to chat/completions and stream to false; each model's body is the
    request with that model, the client's own fields kept."""
    compare = parse({"models": ["a", "b"], "request": {**REQUEST, "temperature": 0}})
    assert compare.endpoint == "chat/completions" and compare.stream is False
    assert compare.body_for("b") == {**REQUEST, "temperature": 0, "model": "b"}


@pytest.mark.parametrize(("endpoint", "streamed"), [
    ("chat/completions", True), ("/v1/completions", True), ("responses", True),
    ("embeddings", False)])
def test_a_streamed_compare_streams_every_model_that_can(endpoint: str, streamed: bool) -> None:
    """With stream true each model is asked to stream, except where an answer has no length
    to stream (embeddings); `/v1/` before the endpoint is accepted."""
    compare = parse({"models": ["a"], "request": REQUEST, "endpoint": endpoint, "stream": True})
    assert ("stream" in compare.body_for("a")) is streamed


@pytest.mark.parametrize(("body", "param"), [
    ({"request": REQUEST}, "models"),
    ({"models": "a", "request": REQUEST}, "models"),
    ({"models": [], "request": REQUEST}, "models"),
    ({"models": ["a", "b", "c", "d"], "request": REQUEST}, "models"),
    ({"models": ["a", 3], "request": REQUEST}, "models[1]"),
    ({"models": ["a"]}, "request"),
    ({"models": ["a"], "request": []}, "request"),
    ({"models": ["a"], "request": REQUEST, "endpoint": "audio/speech"}, "endpoint"),
    ({"models": ["a"], "request": REQUEST, "endpoint": 7}, "endpoint"),
    ({"models": ["a"], "request": REQUEST, "stream": 1}, "stream"),
    ({"models": ["a"], "request": REQUEST, "timeout": 5}, "timeout"),
    ("models", None),
])
def test_each_problem_names_its_field(body: Any, param: str | None) -> None:
    """A wrong field is an InvalidRequest (400) with `param` naming it."""
    with pytest.raises(InvalidRequest) as raised:
        parse(body)
    assert raised.value.param == param and raised.value.status == 400


def test_too_many_models_names_the_setting() -> None:
    """The limit's message names compare.max_models."""
    with pytest.raises(InvalidRequest, match=r"compare\.max_models"):
        parse({"models": ["a"] * 4, "request": REQUEST})


def test_not_json() -> None:
    """A body that is not JSON is invalid_json."""
    with pytest.raises(InvalidJSON):
        parse_compare(b"{", 8)
