"""The stream meter: counting output, the usage chunk removed or given its cost, the cut at the
reservation, and nothing held back (one chunk out per chunk in)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from sidecar.spend.stream import StreamMeter, output_bytes

BASE = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def delta(text: str, index: int = 0) -> bytes:
    return event({**BASE, "choices": [{"index": index, "delta": {"content": text},
                                       "finish_reason": None}]})


FINISH = event({**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
USAGE = event({**BASE, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
DONE = b"data: [DONE]\n\n"


async def chunks(*items: bytes) -> AsyncIterator[bytes]:
    for item in items:
        yield item


def meter(**kwargs: Any) -> StreamMeter:
    defaults: dict[str, Any] = {"limit": None, "strip_usage": False, "add_cost": False,
                                "cost": lambda: 0.25, "ending_usage": lambda: {"x": 1},
                                "completions": False}
    return StreamMeter(**{**defaults, **kwargs})


async def run(m: StreamMeter, *items: bytes) -> list[bytes]:
    return [chunk async for chunk in m.watch(chunks(*items))]


@pytest.mark.parametrize(("payload", "size"), [
    ({"choices": [{"delta": {"content": "héllo"}}]}, 6),
    ({"choices": [{"delta": {"reasoning": "ab", "content": ""}}]}, 2),
    ({"choices": [{"delta": {"tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}}]},
     3),
    ({"choices": [{"text": "abc"}]}, 3),
    ({"type": "response.output_text.delta", "delta": "abcd"}, 4),
    ({"choices": [{"delta": {}, "finish_reason": "stop"}]}, -1),
    ({"choices": [], "usage": {}}, -1),
], ids=["content_utf8", "reasoning", "tool_call", "completions", "responses", "finish",
        "usage"])
def test_output_bytes(payload: dict[str, Any], size: int) -> None:
    """The UTF-8 bytes of the output text a chunk carries; -1 for chunks without output."""
    assert output_bytes(payload) == size


async def test_usage_chunk_removed_for_a_client_that_did_not_ask() -> None:
    """The usage-only chunk is dropped; usage riding on a chunk with choices is taken off it;
    everything else passes byte for byte, and the meter saw the usage."""
    m = meter(strip_usage=True)
    riding = event({**BASE, "choices": [{"index": 0, "delta": {"content": "b"}}],
                    "usage": {"prompt_tokens": 1}})
    out = await run(m, delta("a"), riding, FINISH, USAGE, DONE)
    assert out[0] == delta("a") and out[2:] == [FINISH, DONE]
    assert orjson.loads(out[1][6:]) == {**BASE, "choices": [{"index": 0,
                                                             "delta": {"content": "b"}}]}
    assert (m.usage_seen, m.events, m.text_bytes) == (True, 2, 2)


@pytest.mark.parametrize(("hit", "upstream_cost", "shown"), [
    (False, None, 0.25), (False, 0.5, 0.5), (True, 0.5, 0.25)],
    ids=["added", "upstream_kept", "cache_hit_overrides"])
async def test_usage_cost_for_a_client_that_asked(hit: bool, upstream_cost: float | None,
                                                  shown: float) -> None:
    """A client that asked gets usage.cost: the sidecar's, or the upstream's own; a replayed
    cache hit always shows what this request cost."""
    usage: dict[str, Any] = {"prompt_tokens": 3}
    if upstream_cost is not None:
        usage["cost"] = upstream_cost
    m = meter(add_cost=True, hit=hit)
    out = await run(m, event({**BASE, "choices": [], "usage": usage}), DONE)
    assert orjson.loads(out[0][6:])["usage"]["cost"] == shown


async def test_cut_at_the_limit_ends_cleanly() -> None:
    """At the limit the next output chunk is not sent: a final chunk with finish_reason length
    for each choice seen, the estimated usage when the client asked, and [DONE]."""
    m = meter(limit=2)
    out = await run(m, delta("a"), delta("b", index=1), delta("c"), delta("d"), DONE)
    assert out[:2] == [delta("a"), delta("b", index=1)]
    ending = [orjson.loads(line[6:]) for line in out[2].split(b"\n\n")[:-2]]
    assert ending[0]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "length"},
                                    {"index": 1, "delta": {}, "finish_reason": "length"}]
    assert ending[1] == {**BASE, "choices": [], "usage": {"x": 1}}
    assert out[2].endswith(DONE) and len(out) == 3
    assert (m.cut, m.events) == (True, 2)


async def test_an_upstream_that_stops_at_the_limit_is_not_cut() -> None:
    """Reaching the limit and then finishing (an upstream that honours max_tokens) passes its
    own finish, usage and [DONE] through."""
    m = meter(limit=2)
    out = await run(m, delta("a"), delta("b"), FINISH, USAGE, DONE)
    assert out == [delta("a"), delta("b"), FINISH, USAGE, DONE]
    assert not m.cut


async def test_completions_cut_and_multi_event_chunks() -> None:
    """A completions stream ends with a text_completion chunk; a chunk of several events is
    edited event by event and goes out as one chunk."""
    m = meter(limit=1, completions=True, strip_usage=True)
    text = event({"id": "t", "object": "text_completion", "choices": [{"index": 0,
                                                                       "text": "x"}]})
    out = await run(m, text + USAGE, text)
    assert out[0] == text
    final = orjson.loads(out[1].split(b"\n\n")[0][6:])
    assert final["object"] == "text_completion"
    assert final["choices"] == [{"index": 0, "text": "", "finish_reason": "length",
                                 "logprobs": None}]
    assert out[1].endswith(DONE) and b'"usage"' not in out[1]


async def test_closing_the_meter_closes_the_upstream() -> None:
    """When the client leaves, closing the meter closes the stream under it."""
    closed = []

    class Upstream:
        def __aiter__(self) -> Upstream:
            return self

        async def __anext__(self) -> bytes:
            return delta("a")

        async def aclose(self) -> None:
            closed.append(True)

    watched = meter().watch(Upstream())
    await watched.__anext__()
    await watched.aclose()
    assert closed == [True]
