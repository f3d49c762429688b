"""The Call and Reply types: what goes upstream, a Reply's one body, and a fork."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import fields

import orjson
import pytest
from multidict import CIMultiDict

from sidecar.auto.choice import AutoChoice
from sidecar.call import Answer, Bill, Call, Reply, Usage
from sidecar.globs import Globs
from tests.fakes.calls import make_call


async def _chunks() -> AsyncGenerator[bytes, None]:
    yield b"x"


def test_a_reply_holds_a_body_or_chunks_never_both() -> None:
    """Building a Reply with a body and chunks is refused."""
    chunks = _chunks()
    with pytest.raises(ValueError, match="never both"):
        Reply(200, CIMultiDict(), body=b"x", chunks=chunks)


def test_upstream_body_is_the_clients_bytes_unless_something_changed() -> None:
    """Unchanged: the exact bytes. Overrides, edits or another model name: re-serialised."""
    call = make_call(model="openai/gpt-4o")
    call.raw_body = b'{"model":  "openai/gpt-4o", "messages": []}'
    assert call.body is not None
    assert call.upstream_body() is call.raw_body
    assert call.upstream_body("openai/gpt-4o") is call.raw_body
    renamed = orjson.loads(call.upstream_body("gpt-4o") or b"")
    assert renamed["model"] == "gpt-4o"
    call.overrides["max_tokens"] = 5
    assert orjson.loads(call.upstream_body() or b"")["max_tokens"] == 5
    assert "max_tokens" not in call.body  # overrides never touch the body itself


@pytest.mark.parametrize(("patterns", "name", "matches"), [
    (["openai/*"], "openai/gpt-4o", True),
    (["openai/*"], "anthropic/claude", False),
    (["*-mini", "meta/*"], "openai/gpt-4o-mini", True),
    ([], "anything", False),
    (["gpt-4o"], "gpt-4o-mini", False),
])
def test_globs(patterns: list[str], name: str, matches: bool) -> None:
    """Model globs match whole names, `*` crossing `/`; no patterns match nothing."""
    assert Globs(patterns).match(name) is matches


# Call.fork: every field of a Call in exactly one of these groups (a new field must be sorted
# here, and so decided, before the tests pass).
COPIED = {"request_id", "method", "path", "endpoint", "headers", "started", "raw_body", "body",
          "form", "body_changed", "model", "requested_model", "candidates", "priced_as", "auto",
          "preferences", "stream", "user", "tags",
          "key_name", "allowed_models", "redactions", "pseudonyms", "zdr", "trace_id",
          "span_id"}
COPIED_AS_NEW = {"overrides", "upstream_headers"}  # equal content, a dict of the fork's own
FRESH = {"content", "finishers", "answer", "bill", "cache_status", "response_headers",
         "status", "first_byte_at", "bytes_out", "outcome", "finish_deferred"}
SHAREABLE = {"attempts"}


def _filled_call() -> Call:
    call = make_call(headers={"x-a": "1"}, user="u", tags=("t",), key_name="k",
                     allowed_models=Globs(["*"]), trace_id="t" * 32, span_id="s" * 16)
    call.raw_body, call.body_changed, call.stream = b"{}", True, True
    call.overrides["max_tokens"] = 9
    call.candidates, call.priced_as = ("m-a", "m-b"), "m-b"
    call.auto = AutoChoice("sidecar/auto", "simple", ["short~3"])
    call.upstream_headers["traceparent"] = "00-x"
    call.response_headers["x-sidecar-cache"] = "MISS"
    call.redactions, call.pseudonyms, call.zdr = 2, {"<P1>": "x"}, True
    call.begin_attempt("p", "m", 1.0)
    call.answer = Answer(Usage(1, 2), "stop", "m-1", "chatcmpl-1")
    call.bill = Bill(0.0, cost=5)
    call.cache_status, call.status, call.first_byte_at, call.bytes_out = "MISS", 200, 2.0, 9
    call.outcome = "upstream_broke"
    call.finishers.append(lambda c: None)
    return call


def test_every_field_of_a_call_has_a_fork_rule() -> None:
    """Each field of Call is copied, copied as a new dict, fresh or shareable, exactly once."""
    groups = [COPIED, COPIED_AS_NEW, FRESH, SHAREABLE]
    assert sum(map(len, groups)) == len(set().union(*groups))
    assert set().union(*groups) == {f.name for f in fields(Call)}


@pytest.mark.parametrize("share", [False, True], ids=["own_attempts", "shared_attempts"])
def test_fork_copies_shares_and_starts_afresh_as_documented(share: bool) -> None:
    """A fork keeps the request as asked, starts its own answer, bill, outcome and finishers,
    and shares the attempts list only when asked (a single flight's tries are the leader's)."""
    call = _filled_call()
    fork = call.fork(share_attempts=share)
    blank = Call(request_id="", method="", path="", endpoint=None, headers=call.headers,
                 started=0.0)
    for name in COPIED:
        assert getattr(fork, name) is getattr(call, name), name
    for name in COPIED_AS_NEW:
        assert getattr(fork, name) == getattr(call, name), name
        assert getattr(fork, name) is not getattr(call, name), name
    for name in FRESH:
        assert getattr(fork, name) == getattr(blank, name), name
    assert (fork.attempts is call.attempts) is share
    assert fork.attempts == (call.attempts if share else [])


def test_a_fork_can_be_a_request_of_its_own() -> None:
    """A compare or shadow fork gets its own request id; its edits never reach the original."""
    call = _filled_call()
    fork = call.fork(request_id="other")
    fork.overrides["max_tokens"] = 1
    fork.upstream_headers["traceparent"] = "00-y"
    assert fork.request_id == "other"
    assert (call.overrides["max_tokens"], call.upstream_headers["traceparent"]) == (9, "00-x")
