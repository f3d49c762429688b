"""Reading an answer once: usage, finish reason and model, from JSON bodies and streams."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import orjson
import pytest
from multidict import CIMultiDict

from sidecar.answer import observe, parse_usage
from sidecar.call import Reply, Usage
from tests.fakes.calls import make_call
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
    """A JSON answer's usage, finish reason and model land on the call."""
    call = make_call()
    observe(call, Reply(200, CIMultiDict(), body=orjson.dumps(chat_answer("served/model"))))
    assert (call.usage, call.finish_reason, call.response_model) == (
        Usage(7, 6), "stop", "served/model")
    assert call.response_id == "chatcmpl-fake"  # gen_ai.response.id on the span


def test_observe_ignores_errors_and_non_json() -> None:
    """Error answers and bodies that are not JSON leave the call as it was."""
    call = make_call()
    observe(call, Reply(500, CIMultiDict(), body=orjson.dumps(chat_answer("m"))))
    observe(call, Reply(200, CIMultiDict(), body=b"not json"))
    assert call.usage is None and call.finish_reason is None


async def test_observe_a_stream_as_it_passes() -> None:
    """A stream is watched event by event and passed on unchanged."""
    events = [b"data: " + orjson.dumps(e) + b"\n\n" for e in chat_chunks("m", ["a", "b"])]

    async def chunks() -> AsyncGenerator[bytes, None]:
        for event in events:
            yield event
        yield b"data: [DONE]\n\n"

    call = make_call()
    reply = observe(call, Reply(200, CIMultiDict(), chunks=chunks(), sse=True))
    assert reply.chunks is not None
    assert [c async for c in reply.chunks] == [*events, b"data: [DONE]\n\n"]
    assert (call.usage, call.finish_reason) == (Usage(7, 2), "stop")


def test_observe_a_responses_api_answer() -> None:
    """A Responses API answer: status completed reads as finish reason stop."""
    call = make_call()
    answer = {"object": "response", "status": "completed", "model": "m",
              "usage": {"input_tokens": 3, "output_tokens": 2}}
    observe(call, Reply(200, CIMultiDict(), body=orjson.dumps(answer)))
    assert (call.usage, call.finish_reason) == (Usage(3, 2), "stop")
