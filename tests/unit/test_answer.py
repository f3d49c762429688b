"""Reading an answer once: usage, finish reason and model, from JSON bodies and streams."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import orjson
import pytest
from multidict import CIMultiDict

from sidecar.answer import observe, parse_usage
from sidecar.call import Answer, Reply, Usage
from tests.fakes.upstream import chat_answer, chat_chunks


@pytest.mark.parametrize(("usage", "expected"), [
    ({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}, Usage(10, 5)),
    ({"prompt_tokens": 100, "completion_tokens": 20, "cost": 0.0012,
      "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 30},
      "completion_tokens_details": {"reasoning_tokens": 8}},
     Usage(100, 20, cached_tokens=60, cache_write_tokens=30, reasoning_tokens=8,
           cost_usd=0.0012)),
    ({"prompt_tokens": 4, "total_tokens": 4}, Usage(4, 0)),  # embeddings
    ({"input_tokens": 9, "output_tokens": 3, "input_tokens_details": {"cached_tokens": 2},
      "output_tokens_details": {"reasoning_tokens": 1}},
     Usage(9, 3, cached_tokens=2, reasoning_tokens=1)),  # Responses API
    ({"prompt_tokens": "7", "completion_tokens": -1, "cost": "x"}, Usage(0, 0)),  # junk
    ({"prompt_tokens": 7, "completion_tokens": 2**62, "cost": 1e300}, Usage(7, 0)),  # absurd
    ({"prompt_tokens": 2**31 - 1, "cost": 999_999.0}, Usage(2**31 - 1, 0, cost_usd=999_999.0)),
], ids=["chat", "openrouter-details", "embeddings", "responses", "junk", "absurd", "largest"])
def test_parse_usage(usage: dict[str, object], expected: Usage) -> None:
    """Each usage shape maps onto the same Usage; junk values count as nothing."""
    assert parse_usage(usage) == expected


def test_observe_a_json_answer() -> None:
    """A JSON answer's usage, finish reason, model and id land in the record."""
    answer = Answer()
    observe(answer, Reply(200, CIMultiDict(), body=orjson.dumps(chat_answer("served/model"))))
    assert answer == Answer(Usage(7, 6), "stop", "served/model", "chatcmpl-fake")


def test_observe_ignores_non_json_and_keeps_only_the_usage_of_errors() -> None:
    """A body that is not JSON leaves the record empty; an error answer gives its usage only
    (a failure costs what the upstream says), never a finish reason or a model."""
    answer = Answer()
    observe(answer, Reply(200, CIMultiDict(), body=b"not json"))
    assert answer == Answer()
    observe(answer, Reply(500, CIMultiDict(), body=orjson.dumps(chat_answer("m"))))
    assert answer == Answer(usage=Usage(7, 6))
    plain = Answer()
    observe(plain, Reply(503, CIMultiDict(), body=b'{"error": {"message": "busy"}}'))
    assert plain == Answer()


async def test_observe_a_stream_as_it_passes() -> None:
    """A stream is watched event by event and passed on unchanged."""
    events = [b"data: " + orjson.dumps(e) + b"\n\n" for e in chat_chunks("m", ["a", "b"])]

    async def chunks() -> AsyncGenerator[bytes, None]:
        for event in events:
            yield event
        yield b"data: [DONE]\n\n"

    answer = Answer()
    reply = observe(answer, Reply(200, CIMultiDict(), chunks=chunks(), sse=True))
    assert reply.chunks is not None
    assert [c async for c in reply.chunks] == [*events, b"data: [DONE]\n\n"]
    assert (answer.usage, answer.finish_reason) == (Usage(7, 2), "stop")


def test_observe_a_responses_api_answer() -> None:
    """A Responses API answer: status completed reads as finish reason stop."""
    record = Answer()
    answer = {"object": "response", "status": "completed", "model": "m",
              "usage": {"input_tokens": 3, "output_tokens": 2}}
    observe(record, Reply(200, CIMultiDict(), body=orjson.dumps(answer)))
    assert (record.usage, record.finish_reason) == (Usage(3, 2), "stop")
