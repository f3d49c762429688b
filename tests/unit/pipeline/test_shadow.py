"""The shadow stage: where it sits, what it samples, what it keeps of the primary's answer, and
that the client's reply passes unchanged; and read_body's already-read body (a compare fork)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from sidecar.call import Call, Reply
from sidecar.compare.shadow_plan import ShadowPlan
from sidecar.compare.shadow_runner import Primary, ShadowRunner
from sidecar.config import Settings
from sidecar.config.compare import ShadowRule
from sidecar.deps import Deps
from sidecar.pipeline import build_pipeline
from sidecar.pipeline.read_body import ReadBody
from sidecar.pipeline.shadow import Shadow
from tests.fakes.calls import make_call, ok

RULE = {"name": "r", "candidate": "c/model", "budget_usd": 1, "percent": 100}


class Offers(ShadowRunner):
    """The runner, with what the stage offers it noted instead of run."""

    def __init__(self, rules: list[ShadowRule]) -> None:
        super().__init__(rules)
        self.offered: list[tuple[str, Primary]] = []

    def offer(self, plan: ShadowPlan, primary: Primary) -> None:
        self.offered.append((plan.rule.name, primary))


def stage(*rules: dict[str, Any]) -> tuple[Shadow, Offers]:
    settings = [ShadowRule.model_validate(rule) for rule in rules]
    runner = Offers(settings)
    return Shadow([ShadowPlan.of(rule, ok) for rule in settings], runner, lambda: 0.5), runner


def test_it_sits_after_privacy_and_before_fallback() -> None:
    """With a rule, the default list gains `shadow` right after privacy (before fallback and
    spend); without one it is absent."""
    settings = Settings.model_validate({"privacy": {"redact": {"mode": "mask"}},
                                        "routes": {"a": ["x", "y"]}, "shadow": [RULE]})
    names = build_pipeline(Deps.build(settings, env={})).stage_names
    assert names[names.index("privacy") + 1:names.index("spend")] == ("shadow", "fallback")
    assert "shadow" not in build_pipeline(Deps.build(Settings(), env={})).stage_names


async def test_a_sampled_json_answer_is_kept_and_offered_when_finished() -> None:
    """Only matching, sampled requests are kept; the reply passes unchanged; the finisher
    offers the primary (its redacted body, its answer) to each sampled rule."""
    shadow, runner = stage(RULE, {**RULE, "name": "never", "percent": 0},
                           {**RULE, "name": "other", "match": {"model": "anthropic/*"}})
    call = make_call()
    call.status = 200
    reply = await shadow(call, ok)
    assert reply.body == b"upstream"
    call.finish()
    ((name, primary),) = runner.offered
    assert name == "r" and primary.answer.body == b"upstream" and not primary.answer.streamed
    assert primary.body is call.body and primary.side.status == 200
    assert [runner.stats[n].matched for n in ("r", "never", "other")] == [1, 1, 0]
    assert [runner.stats[n].sampled for n in ("r", "never", "other")] == [1, 0, 0]


async def test_a_stream_is_kept_chunk_by_chunk_as_it_passes() -> None:
    """A streamed answer reaches the client chunk by chunk, each also kept for the pair."""
    shadow, runner = stage(RULE)
    chunks = [b"data: 1\n\n", b"data: 2\n\n"]

    async def gen() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def streaming(call: Call) -> Reply:
        return Reply(200, CIMultiDict(), chunks=gen(), sse=True)

    call = make_call()
    reply = await shadow(call, streaming)
    assert reply.chunks is not None
    assert [chunk async for chunk in reply.chunks] == chunks
    call.finish()
    ((_, primary),) = runner.offered
    assert primary.answer.streamed and primary.answer.body == b"".join(chunks)


async def test_a_compare_call_is_never_sampled() -> None:
    """A compare's model call (tagged compare) is an evaluation already: not copied."""
    shadow, runner = stage(RULE)
    call = make_call(tags=("compare",))
    await shadow(call, ok)
    call.finish()
    assert runner.offered == [] and runner.stats["r"].matched == 0


async def test_read_body_parses_a_body_already_read() -> None:
    """A fork with its body already read (raw_body, no content) is parsed and checked as a
    client's, whatever the headers said of the compare request's own body."""
    call = make_call(model=None)
    call.headers = CIMultiDictProxy(CIMultiDict({"Content-Encoding": "gzip",
                                                 "Content-Length": "99999999"}))
    call.raw_body = orjson.dumps({"model": "m/one", "stream": True, "user": "u",
                                  "messages": []})
    reply = await ReadBody(1024)(call, ok)
    assert reply.body == b"upstream"
    assert (call.model, call.stream, call.user) == ("m/one", True, "u")
