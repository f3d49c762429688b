"""The answer stage: a fresh record per run, filled from what the upstream answered."""

from __future__ import annotations

import orjson
from multidict import CIMultiDict

from sidecar.call import Answer, Call, Reply, Usage
from sidecar.pipeline.answer import ReadAnswer
from tests.fakes.calls import make_call
from tests.fakes.upstream import chat_answer


async def test_each_run_gets_a_fresh_record_filled_from_its_answer() -> None:
    """A second run (a fallback candidate) starts from an empty record, not the first's; the
    record the call holds afterwards is the one filled from this answer."""
    call = make_call()
    stale = call.answer = Answer(Usage(99, 99), "length", "old", "old-id")

    async def upstream(call: Call) -> Reply:
        assert call.answer == Answer() and call.answer is not stale
        return Reply(200, CIMultiDict(), body=orjson.dumps(chat_answer("served")))

    reply = await ReadAnswer()(call, upstream)
    assert reply.status == 200
    assert call.answer == Answer(Usage(7, 6), "stop", "served", "chatcmpl-fake")
    assert stale == Answer(Usage(99, 99), "length", "old", "old-id")  # never written again
