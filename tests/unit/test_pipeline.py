"""The stage list: composition order, and the auth stage with a `next` stub."""

from __future__ import annotations

import time
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from sidecar.call import Call, Next, Reply
from sidecar.config import Settings
from sidecar.pipeline import build_pipeline, compose
from sidecar.pipeline.auth import Auth
from sidecar.upstream.client import UpstreamClient


def make_call(headers: dict[str, str] | None = None, model: str | None = "openai/gpt-4o",
              **fields: Any) -> Call:
    return Call(request_id="r1", method="POST", path="/chat/completions",
                endpoint="chat/completions", started=time.monotonic(),
                headers=CIMultiDictProxy(CIMultiDict(headers or {})), model=model, **fields)


async def ok(call: Call) -> Reply:
    return Reply(200, CIMultiDict(), body=b"upstream")


class Recorder:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def __call__(self, call: Call, next: Next) -> Reply:
        self.log.append(f"{self.name}>")
        reply = await next(call)
        self.log.append(f"<{self.name}")
        return reply


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


def test_disabled_features_are_absent_from_the_list() -> None:
    """With auth off the model pipeline is just the route; with auth on, auth comes first."""
    plain = build_pipeline(Settings(), UpstreamClient(Settings().upstream))
    assert plain.stage_names == ("route",)
    guarded = Settings.model_validate({"auth": {"required": True,
                                                "keys": [{"name": "a", "token": "t"}]}})
    assert build_pipeline(guarded, UpstreamClient(guarded.upstream)).stage_names == (
        "auth", "route")


AUTH = Settings.model_validate({"auth": {"required": True, "keys": [
    {"name": "team-a", "token": "tok-a", "tags": ["batch"], "allowed_models": ["openai/*"]},
    {"name": "team-b", "token": "tok-b"},
]}}).auth


async def test_auth_accepts_a_known_token_and_tags_the_call() -> None:
    """A known bearer token passes; the call carries the key's name and tags."""
    call = make_call({"Authorization": "Bearer tok-a"}, tags=("from-header",))
    reply = await Auth(AUTH)(call, ok)
    assert reply.status == 200
    assert call.key_name == "team-a"
    assert call.tags == ("from-header", "batch")


async def test_auth_refuses_missing_and_unknown_tokens() -> None:
    """No token or an unknown one ends the call with 401 invalid_api_key, next not called."""
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic tok-a"}):
        reply = await Auth(AUTH)(make_call(headers), ok)
        assert reply.status == 401
        assert reply.body is not None and b'"code":"invalid_api_key"' in reply.body
        assert b"tok-a" not in reply.body


async def test_auth_enforces_allowed_models() -> None:
    """A model outside the key's globs gets 403 model_not_allowed; inside passes."""
    denied = await Auth(AUTH)(make_call({"Authorization": "Bearer tok-a"},
                                        model="anthropic/claude-3-5-haiku"), ok)
    assert denied.status == 403
    assert denied.body is not None and b'"code":"model_not_allowed"' in denied.body
    allowed = await Auth(AUTH)(make_call({"Authorization": "Bearer tok-b"},
                                         model="anthropic/claude-3-5-haiku"), ok)
    assert allowed.status == 200


async def test_auth_lets_passthrough_calls_without_a_model_through() -> None:
    """Passthrough calls (no model) only need a valid token."""
    reply = await Auth(AUTH)(make_call({"Authorization": "Bearer tok-a"}, model=None), ok)
    assert reply.status == 200
