"""A finished Call as spans: attempt windows, one CLIENT span per attempt, SERVER attributes."""

from __future__ import annotations

import pytest

from sidecar.call import Answer, Attempt, Bill, Usage
from sidecar.telemetry.genai import Upstreams
from sidecar.telemetry.otlp.records import CLIENT, SERVER, STATUS_ERROR
from sidecar.telemetry.spans import Clock, StreamTiming, attempt_window, build_spans
from sidecar.telemetry.tracing import TraceContext
from tests.fakes.calls import make_call

UPSTREAMS = Upstreams({"openrouter": "https://openrouter.ai/api/v1",
                       "direct": "https://api.anthropic.com/v1"})
TRACE = TraceContext(trace_id=0xABC, span_id=0x123, parent_id=0x77, sampled=True,
                     trace_state="k=v")
CLOCK = Clock(offset_ns=1_000_000_000_000)


@pytest.mark.parametrize(("attempts", "index", "window"), [
    ([Attempt("p", "m", 10.0, ended=11.0)], 0, (10.0, 11.0)),  # its own end
    ([Attempt("p", "m", 10.0), Attempt("p", "m", 12.0)], 0, (10.0, 12.0)),  # until the next
    ([Attempt("p", "m", 10.0)], 0, (10.0, 20.0)),  # a stream: until the request ended
    ([Attempt("p", "m", 25.0)], 0, (25.0, 25.0)),  # never before its own start
])
def test_attempt_windows(attempts: list[Attempt], index: int,
                         window: tuple[float, float]) -> None:
    """An attempt lasts until its own end, else the next attempt's start, else the request's."""
    assert attempt_window(attempts, index, end=20.0) == window


def test_a_fallback_gives_one_client_span_per_attempt() -> None:
    """Two attempts: the failed one carries error.type and ERROR status; the answered one the
    fallback reason, provider names, usage and the response; both children of SERVER."""
    call = make_call(body={"model": "openai/gpt-4o", "messages": [], "temperature": 0.5,
                           "max_tokens": 64})
    call.status = 200
    call.attempts = [
        Attempt("openrouter", "openai/gpt-4o", call.started + 0.1, status=503,
                error="http_503", headers_at=call.started + 0.2, ended=call.started + 0.3),
        Attempt("direct", "claude-x", call.started + 0.5, status=200, ended=call.started + 1),
    ]
    call.answer = Answer(Usage(prompt_tokens=10, completion_tokens=5, cached_tokens=4,
                               reasoning_tokens=2), "stop", "claude-x-1", "msg_1")
    call.bill = Bill(0.0, cost=2_000_000)
    call.cache_status, call.redactions = "MISS", 3
    server, first, second = build_spans(call, TRACE, CLOCK, call.started + 2, UPSTREAMS,
                                        StreamTiming(), None, None)
    assert (server.kind, first.kind, second.kind) == (SERVER, CLIENT, CLIENT)
    assert server.parent_id == 0x77 and server.remote_parent and server.trace_state == "k=v"
    assert first.parent_id == second.parent_id == server.span_id == 0x123
    assert len({server.span_id, first.span_id, second.span_id}) == 3
    assert first.name == "chat openai/gpt-4o" and second.name == "chat claude-x"
    assert first.start_ns == CLOCK.wall_ns(call.started + 0.1)
    assert first.end_ns == CLOCK.wall_ns(call.started + 0.3)
    assert first.status == STATUS_ERROR and first.attributes["error.type"] == "http_503"
    assert first.attributes["gen_ai.provider.name"] == "openrouter"
    assert first.attributes["server.address"] == "openrouter.ai"
    assert first.attributes["server.port"] == 443
    assert "gen_ai.usage.input_tokens" not in first.attributes
    got = second.attributes
    assert got["gen_ai.provider.name"] == "anthropic"
    assert got["llm_sidecar.attempt"] == 2 and got["llm_sidecar.fallback_reason"] == "http_503"
    assert got["gen_ai.request.temperature"] == 0.5 and got["gen_ai.request.max_tokens"] == 64
    assert got["gen_ai.response.model"] == "claude-x-1"
    assert got["gen_ai.response.id"] == "msg_1"
    assert got["gen_ai.response.finish_reasons"] == ("stop",)
    assert (got["gen_ai.usage.input_tokens"], got["gen_ai.usage.output_tokens"]) == (10, 5)
    assert got["gen_ai.usage.cache_read.input_tokens"] == 4
    assert got["gen_ai.usage.reasoning.output_tokens"] == 2
    assert "error.type" not in got and second.status == 0
    on_server = server.attributes
    assert on_server["llm_sidecar.attempts"] == 2 and on_server["llm_sidecar.cache"] == "MISS"
    assert on_server["llm_sidecar.cost_usd"] == 0.002 and on_server["llm_sidecar.redactions"] == 3
    assert server.name == "POST /v1/chat/completions"


def test_a_stream_that_broke_marks_its_attempt_and_the_server_span() -> None:
    """outcome upstream_broke: the last CLIENT span and the SERVER span are errors; the
    time to first chunk and its event are on the CLIENT span."""
    call = make_call(body={"model": "m", "messages": [], "stream": True}, stream=True)
    call.status, call.outcome = 200, "upstream_broke"
    call.attempts = [Attempt("openrouter", "m", call.started + 0.1, status=200)]
    timing = StreamTiming(first=call.started + 0.4, last=call.started + 0.9)
    server, client = build_spans(call, TRACE, CLOCK, call.started + 1, UPSTREAMS, timing,
                                 None, None)
    assert client.attributes["error.type"] == "upstream_broke" and client.status == STATUS_ERROR
    assert server.attributes["error.type"] == "upstream_broke" and server.status == STATUS_ERROR
    assert client.attributes["gen_ai.request.stream"] is True
    assert client.end_ns == CLOCK.wall_ns(call.started + 1)


def test_time_to_first_chunk_for_an_answered_stream() -> None:
    """An answered stream's CLIENT span has TTFT from the attempt's start, an event at the
    first chunk, and Langfuse's completion start time."""
    call = make_call(stream=True)
    call.status = 200
    call.attempts = [Attempt("openrouter", "m", call.started + 0.1, status=200)]
    timing = StreamTiming(first=call.started + 0.35, last=call.started + 0.9)
    _, client = build_spans(call, TRACE, CLOCK, call.started + 1, UPSTREAMS, timing, None, None)
    assert client.attributes["gen_ai.response.time_to_first_chunk"] == pytest.approx(0.25)
    (event,) = client.events or []
    assert event.time_ns == CLOCK.wall_ns(call.started + 0.35)
    assert client.attributes["langfuse.observation.completion_start_time"].endswith("Z")


def test_content_goes_only_where_it_was_captured() -> None:
    """Captured input goes on every attempt's span, output only on the answered one."""
    call = make_call()
    call.status = 200
    call.attempts = [Attempt("openrouter", "m", call.started, status=500, error="http_500",
                             ended=call.started + 0.1),
                     Attempt("openrouter", "m", call.started + 0.2, status=200,
                             ended=call.started + 0.3)]
    captured = {"gen_ai.input.messages": "[in]", "gen_ai.output.messages": "[out]"}
    _, first, second = build_spans(call, TRACE, CLOCK, call.started + 1, UPSTREAMS,
                                   StreamTiming(), None, captured)
    assert first.attributes["gen_ai.input.messages"] == "[in]"
    assert "gen_ai.output.messages" not in first.attributes
    assert second.attributes["gen_ai.output.messages"] == "[out]"


def test_no_attempt_no_client_span() -> None:
    """A request answered without an upstream (a cache hit, a 4xx from a stage) is one span,
    with the sidecar's error code when a stage refused it."""
    call = make_call()
    call.status, call.cache_status = 402, None
    (server,) = build_spans(call, TRACE, CLOCK, call.started + 1, UPSTREAMS, StreamTiming(),
                            "budget_exceeded", None)
    assert server.attributes["llm_sidecar.error"] == "budget_exceeded"
    assert server.status == 0  # a 4xx is the client's error, not the server's
