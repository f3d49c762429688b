"""The stage list: composition order, and the auth stage with a `next` stub."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.call import Call, Reply
from sidecar.config import Settings
from sidecar.deps import Deps
from sidecar.errors import ModelNotAllowed
from sidecar.pipeline import build_pipeline, compose
from sidecar.pipeline.auth import Auth
from sidecar.pipeline.read_body import accept_body
from sidecar.telemetry.metrics import Metrics
from sidecar.telemetry.refusals import AuthRefusals
from tests.fakes.calls import Recorder, make_call, ok


async def test_compose_runs_request_side_in_order_and_response_side_reversed() -> None:
    """Stages see the request left to right and the reply right to left; terminal last."""
    log: list[str] = []

    async def terminal(call: Call) -> Reply:
        log.append("route")
        return await ok(call)

    handler = compose([Recorder("a", log), Recorder("b", log)], terminal)
    reply = await handler(make_call())
    assert reply.body == b"upstream"
    assert log == ["a>", "b>", "route", "<b", "<a"]


QUIET = {"telemetry": {"prometheus": False}, "admin": {"ui": False},
         "cache": {"backend": "off"}, "spend": {"ledger": "off"}}


def test_disabled_features_are_absent_from_the_list() -> None:
    """With auth, metrics, the inspector, spend and the cache off the model pipeline reads the
    body and routes; with auth on, auth comes first; defaults: telemetry (Prometheus), the
    inspector, spend (the SQLite ledger), the memory cache (which detaches its misses: no detach
    stage of its own), and the answer stage because they read the answer; without the cache,
    spend's detach stage; zero retention adds its stage (and turns the default cache off)."""
    plain = build_pipeline(Deps.build(Settings.model_validate(QUIET), env={}))
    assert plain.stage_names == ("read_body", "route")
    guarded = Settings.model_validate({**QUIET, "auth": {"required": True,
                                                         "keys": [{"name": "a", "token": "t"}]}})
    assert build_pipeline(Deps.build(guarded, env={})).stage_names == (
        "auth", "read_body", "route")
    default = build_pipeline(Deps.build(Settings.model_validate({}), env={}))
    assert default.stage_names == (
        "telemetry", "inspect", "read_body", "spend", "cache", "answer", "route")
    uncached = build_pipeline(Deps.build(Settings.model_validate({"cache": {"backend": "off"}}),
                                         env={}))
    assert uncached.stage_names == (
        "telemetry", "inspect", "read_body", "spend", "detach", "answer", "route")
    zdr = Settings.model_validate({**QUIET, "privacy": {"zdr": True}})
    assert build_pipeline(Deps.build(zdr, env={})).stage_names == ("zdr", "read_body", "route")


@pytest.mark.parametrize(("telemetry", "present"), [
    ({"prometheus": False}, False),
    ({"prometheus": True}, True),
    ({"prometheus": False, "capture_content": True}, True),
    ({"prometheus": False, "exporters": [{"protocol": "console", "signals": ["traces"]}]}, True),
    ({"prometheus": False, "exporters": [{"protocol": "grpc", "endpoint": "http://c:4317",
                                          "signals": ["metrics"]}]}, True),
    ({"prometheus": False, "exporters": [{"protocol": "grpc", "endpoint": "http://c:4317",
                                          "signals": ["logs"]}]}, False),
])
def test_telemetry_stage_is_present_when_something_reads_it(telemetry: dict[str, Any],
                                                             present: bool) -> None:
    """The telemetry stage runs only when traces, captured content or metrics are read."""
    settings = Settings.model_validate({"telemetry": telemetry})
    names = build_pipeline(Deps.build(settings, env={})).stage_names
    assert ("telemetry" in names) is present
    if present:
        assert names[0] == "telemetry"


AUTH = Settings.model_validate({"auth": {"required": True, "keys": [
    {"name": "team-a", "token": "tok-a", "tags": ["batch"], "allowed_models": ["openai/*"]},
    {"name": "team-b", "token": "tok-b"},
]}}).auth


def make_auth() -> Auth:
    return Auth(AUTH, AuthRefusals(Metrics()))


async def test_auth_accepts_a_known_token_and_tags_the_call() -> None:
    """A known bearer token passes; the call carries the key's name and tags."""
    call = make_call({"Authorization": "Bearer tok-a"}, tags=("from-header",))
    reply = await make_auth()(call, ok)
    assert reply.status == 200
    assert call.key_name == "team-a"
    assert call.tags == ("from-header", "batch")


async def test_auth_refuses_missing_and_unknown_tokens() -> None:
    """No token or an unknown one ends the call with 401 invalid_api_key, next not called."""
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic tok-a"}):
        reply = await make_auth()(make_call(headers), ok)
        assert reply.status == 401
        assert reply.body is not None and b'"code":"invalid_api_key"' in reply.body
        assert b"tok-a" not in reply.body


async def test_auth_hands_the_allowed_models_to_read_body() -> None:
    """The key's globs go onto the call; read_body refuses a model outside them with 403."""
    restricted = make_call({"Authorization": "Bearer tok-a"}, model=None)
    await make_auth()(restricted, ok)
    assert restricted.allowed_models is not None
    accept_body(restricted, b'{"model": "openai/gpt-4o"}')
    with pytest.raises(ModelNotAllowed, match=r"allowed_models are openai/\*"):
        accept_body(restricted, b'{"model": "anthropic/claude-3-5-haiku"}')
    free = make_call({"Authorization": "Bearer tok-b"}, model=None)
    await make_auth()(free, ok)
    assert free.allowed_models is None  # "*": every model, no check at all


async def test_auth_lets_passthrough_calls_without_a_model_through() -> None:
    """Passthrough calls (no model) only need a valid token."""
    reply = await make_auth()(make_call({"Authorization": "Bearer tok-a"}, model=None), ok)
    assert reply.status == 200
