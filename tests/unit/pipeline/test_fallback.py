"""The fallback stage with a scripted `next`: candidates, when it moves on, and its cost-free
path for ordinary requests."""

from __future__ import annotations

from typing import Any

from multidict import CIMultiDict

from sidecar.call import Call, Reply
from sidecar.errors import BudgetExceeded, NoProviderAvailable, UpstreamUnavailable
from sidecar.globs import Globs
from sidecar.pipeline.fallback import MAX_CANDIDATES, Fallback
from tests.fakes.calls import make_call

RETRY_ON = (429, 500, 502, 503, 504)


class Chunks:
    """A reply stream that counts how often it was closed (a discarded reply is closed)."""

    closed = 0

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration

    async def aclose(self) -> None:
        Chunks.closed += 1


class Scripted:
    """A `next` answering each call with the next reply, recording the model it saw."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.seen: list[tuple[str | None, Any]] = []

    async def __call__(self, call: Call) -> Reply:
        self.seen.append((call.model, call.preferences))
        assert call.overrides == {}
        call.overrides = {"max_tokens": 1}  # per-model state the next candidate must not see
        return self.replies.pop(0)


def status(code: int) -> Reply:
    return Reply(code, CIMultiDict(), chunks=Chunks())


def stage(**kw: Any) -> Fallback:
    return Fallback(kw.pop("routes", {}), RETRY_ON, local=kw.pop("local", True),
                    reads_answer=False)


async def test_plain_request_passes_untouched() -> None:
    """No alias, no models, no provider, no suffix: next runs once and the body is not
    re-rendered."""
    call = make_call(model="openai/gpt-4o")
    nxt = Scripted(status(200))
    assert (await stage()(call, nxt)).status == 200
    assert nxt.seen == [("openai/gpt-4o", None)]
    assert call.body_changed is False


async def test_candidates_in_order_until_one_answers() -> None:
    """model first, then `models`, duplicates once; failed replies are discarded."""
    call = make_call(body={"model": "a", "models": ["b", "a", "c"], "messages": []}, model="a")
    nxt = Scripted(status(503), Reply.from_error(UpstreamUnavailable("down.")), status(200))
    closed = Chunks.closed
    reply = await stage()(call, nxt)
    assert reply.status == 200
    assert [m for m, _ in nxt.seen] == ["a", "b", "c"]
    assert Chunks.closed == closed + 1  # the 503's stream; the error reply had none
    assert call.body is not None and "models" not in call.body and call.body_changed


async def test_other_errors_end_the_request() -> None:
    """A 400 from the upstream or a local error (402 budget) is the answer: no next model."""
    for reply in (status(400), Reply.from_error(BudgetExceeded("over."))):
        call = make_call(body={"model": "a", "models": ["b"]}, model="a")
        nxt = Scripted(reply, status(200))
        assert (await stage()(call, nxt)) is reply
        assert len(nxt.seen) == 1


async def test_last_failure_prefers_an_upstream_answer() -> None:
    """When all fail, the client gets an upstream's failure rather than 'no provider'."""
    call = make_call(body={"model": "a", "models": ["b"]}, model="a")
    upstream_503 = status(503)
    nxt = Scripted(upstream_503, Reply.from_error(NoProviderAvailable("none.")))
    assert (await stage()(call, nxt)) is upstream_503


async def test_suffixes_become_preferences_per_candidate() -> None:
    """Each candidate's own suffix sets its sort; the body's provider object applies to all."""
    call = make_call(body={"model": "a:floor", "models": ["b:nitro", "c"],
                           "provider": {"ignore": ["x"]}}, model="a:floor")
    nxt = Scripted(status(503), status(503), status(200))
    await stage()(call, nxt)
    assert [(m, p.sort, p.ignore) for m, p in nxt.seen] == [
        ("a", "price", frozenset({"x"})), ("b", "throughput", frozenset({"x"})),
        ("c", None, frozenset({"x"}))]


async def test_openrouter_alone_resolves_aliases_only() -> None:
    """Not local: routing fields and suffixes stay for OpenRouter; an alias still expands."""
    body = {"model": "fast", "models": ["z"], "provider": {"sort": "price"}}
    call = make_call(body=dict(body), model="fast")
    nxt = Scripted(status(503), status(200))
    await stage(routes={"fast": ["a:nitro", "b"]}, local=False)(call, nxt)
    assert nxt.seen == [("a:nitro", None), ("b", None)]
    assert call.body == body and not call.body_changed


async def test_key_allowance_filters_candidates() -> None:
    """Candidates outside the key's allowed_models are skipped; none left is 403."""
    call = make_call(body={"model": "open/a", "models": ["closed/b", "open/c"]}, model="open/a",
                     allowed_models=Globs(["open/*"]), key_name="k")
    nxt = Scripted(status(503), status(200))
    await stage()(call, nxt)
    assert [m for m, _ in nxt.seen] == ["open/a", "open/c"]
    refused = make_call(body={"model": "x", "models": ["closed/b"]}, model="x",
                        allowed_models=Globs(["open/*"]), key_name="k")
    reply = await stage()(refused, Scripted())
    assert reply.status == 403 and reply.body is not None and b"closed/b" in reply.body


async def test_candidates_are_bounded() -> None:
    """A request cannot make the sidecar try more than MAX_CANDIDATES models."""
    models = [f"m{i}" for i in range(40)]
    call = make_call(body={"model": "m", "models": models}, model="m")
    nxt = Scripted(*[status(503) for _ in range(40)])
    await stage()(call, nxt)
    assert len(nxt.seen) == MAX_CANDIDATES


async def test_a_long_models_list_keeps_the_first_distinct_names() -> None:
    """Duplicates count once, in first-seen order, and a list of any length is read only up
    to the bound (100,000 names, mostly repeats)."""
    models = ["m1", "m0", "m1"] * 50_000 + [f"x{i}" for i in range(40)]
    call = make_call(body={"model": "m0", "models": models}, model="m0")
    nxt = Scripted(*[status(503) for _ in range(MAX_CANDIDATES)])
    await stage()(call, nxt)
    assert [model for model, _ in nxt.seen] == ["m0", "m1", *[f"x{i}" for i in
                                                                range(MAX_CANDIDATES - 2)]]


async def test_a_refusal_quotes_a_few_of_the_refused_names() -> None:
    refused = make_call(body={"model": "closed/a", "models": [f"closed/{i}" for i in range(500)]},
                        model="closed/a", allowed_models=Globs(["open/*"]), key_name="k")
    reply = await stage()(refused, Scripted())
    assert reply.status == 403 and reply.body is not None
    assert b"closed/a, closed/0, closed/1, closed/2, closed/3 and 496 more" in reply.body
