"""Upstream faults with every feature on: refused connections, resets mid-body, hangs, answers
trickling in byte by byte, malformed JSON, broken event streams, huge answers.

Each test asserts what the client got, the ledger row (present, billed right), the cache (a
broken answer is never stored: the same request asked again goes upstream), and then
`Full.settled` (nothing held, no connection checked out, a span and an inspector record per
request) and `still_serving`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from tests.fakes.otlp import BlackHole
from tests.fakes.ports import free_port
from tests.fakes.upstream import Event, Script, chat_answer, chat_chunks
from tests.reliability.conftest import StartFull
from tests.reliability.harness import (
    EMAIL,
    MODEL,
    PLACEHOLDER,
    Full,
    Seen,
    chat_body,
    cost_nusd,
)

JSON_COST = cost_nusd(7, 6)  # the fake's default answer: 7 prompt and 6 completion tokens
PIECES = ["Hi ", "<EMA", "IL_1>", ", bye"]  # a placeholder split over two events
STREAM_COST = cost_nusd(7, len(PIECES))  # chat_chunks reports one token a piece


def answer(text: str = f"Hello {PLACEHOLDER}.") -> dict[str, Any]:
    return chat_answer(MODEL, text)


def chunks(pieces: list[str] = PIECES) -> list[Event]:
    return chat_chunks(MODEL, pieces)


async def not_stored(full: Full, body: dict[str, Any]) -> Seen:
    """The same request again, the fault gone: it goes upstream (nothing broken was cached)
    and gets a whole answer."""
    again = await full.post(body)
    assert again.status == 200
    assert again.headers["x-sidecar-cache"] == "MISS"
    if body.get("stream"):
        assert again.events()[-1] == b"[DONE]"
    else:
        assert again.json["choices"][0]["finish_reason"] == "stop"
    return again


async def served_by_backup(full: Full, body: dict[str, Any]) -> None:
    """The request was answered by the backup provider, whole, and billed once, as its
    answer; then it is a cache hit (a good answer is stored)."""
    seen = full.seen[-1]
    assert seen.status == 200, seen.body
    assert seen.headers["x-sidecar-provider"] == "backup"
    assert int(seen.headers["x-sidecar-attempts"]) >= 2
    stream = bool(body.get("stream"))
    assert seen.text() == ("Hello from fake." if stream else "Hello from the fake upstream.")
    row = (await full.settled())[seen.request_id]
    assert (row["provider"], row["cost_nusd"], row["estimated"]) == (
        "backup", cost_nusd(7, 3) if stream else JSON_COST, 0)
    hit = await full.post(body)
    assert hit.headers["x-sidecar-cache"] == "HIT" and hit.text() == seen.text()


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nobody listens: connection refused


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_connection_refused_falls_back(start_full: StartFull, stream: bool) -> None:
    """The primary refuses connections: the backup answers, billed once as its answer."""
    full = await start_full(primary_url=dead_url())
    body = chat_body(stream=stream)
    await full.post(body)
    await served_by_backup(full, body)
    await full.still_serving()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_connection_refused_everywhere_is_a_clean_502(start_full: StartFull,
                                                            stream: bool) -> None:
    """Every provider refuses: 502 upstream_unavailable naming both, a row billed 0, the
    hold released, nothing cached."""
    full = await start_full(primary_url=dead_url(), backup_url=dead_url())
    seen = await full.post(chat_body(stream=stream))
    assert seen.status == 502
    error = seen.json["error"]
    assert error["code"] == "upstream_unavailable"
    assert "'primary'" in error["message"] and "'backup'" in error["message"]
    assert EMAIL not in error["message"]
    row = (await full.settled())[seen.request_id]
    assert (row["cost_nusd"], row["status"]) == (0, 502)


async def test_reset_mid_json_body_falls_back(full: Full) -> None:
    """The primary sends headers and half a JSON body, then resets: the half is never shown;
    the backup answers (nothing was sent to the client yet, so it may still be retried)."""
    full.primary.script("/chat/completions", Script(json=answer(), cut_body_after=40))
    body = chat_body()
    await full.post(body)
    await served_by_backup(full, body)
    await full.still_serving()


async def test_reset_mid_stream_ends_with_an_error_event(full: Full) -> None:
    """The primary resets after two events: the client gets them (restored as far as they
    go), then one error event and no [DONE]; billed as an estimate, never cached."""
    full.primary.script("/chat/completions", Script(sse=chunks(), drop_after=2))
    body = chat_body(stream=True)
    seen = await full.post(body)
    events = seen.events()
    assert b"[DONE]" not in events
    assert orjson.loads(events[-1])["error"]["code"] == "upstream_unavailable"
    assert seen.text().startswith("Hi ") and PLACEHOLDER not in seen.text()
    row = (await full.settled())[seen.request_id]
    assert (row["outcome"], row["estimated"]) == ("upstream_broke", 1)
    assert row["cost_nusd"] > 0
    await not_stored(full, body)
    await full.still_serving()


# Short, so that hangs end quickly; long enough that a loaded machine's event-loop lag is not
# taken for a silent upstream.
HANG_TIMEOUT_S = 0.5
HANGS = {
    "before_headers": Script(json=answer(), hold=asyncio.Event()),  # never set
    "mid_json_body": Script(json=answer(), stall_body_after=30),
}


@pytest.mark.parametrize("where", list(HANGS))
async def test_hang_times_out_and_falls_back(start_full: StartFull, where: str) -> None:
    """The primary goes silent (before its headers, or in the middle of its body): the read
    timeout fires and the backup answers."""
    full = await start_full(upstream={"read_timeout_s": HANG_TIMEOUT_S})
    full.primary.script("/chat/completions", HANGS[where])
    body = chat_body()
    await full.post(body)
    await served_by_backup(full, body)
    await full.still_serving()


async def test_hang_everywhere_is_a_clean_504(start_full: StartFull) -> None:
    """Both providers accept connections and never answer (black holes): 504 upstream_timeout
    after the read timeout of each try, a row billed 0, nothing held."""
    holes = BlackHole(), BlackHole()
    try:
        full = await start_full(primary_url=holes[0].endpoint, backup_url=holes[1].endpoint,
                                upstream={"read_timeout_s": HANG_TIMEOUT_S})
        seen = await full.post(chat_body())
        assert seen.status == 504
        assert seen.json["error"]["code"] == "upstream_timeout"
        row = (await full.settled())[seen.request_id]
        assert (row["cost_nusd"], row["status"]) == (0, 504)
    finally:
        for hole in holes:
            hole.close()


async def test_hang_mid_stream_ends_with_a_timeout_event(start_full: StartFull) -> None:
    """The primary goes silent after two events: after read_timeout_s the client gets one
    upstream_timeout error event; billed as an estimate, never cached."""
    full = await start_full(upstream={"read_timeout_s": HANG_TIMEOUT_S})
    full.primary.script("/chat/completions", Script(sse=chunks(), stall_after=2))
    body = chat_body(stream=True)
    seen = await full.post(body)
    assert orjson.loads(seen.events()[-1])["error"]["code"] == "upstream_timeout"
    row = (await full.settled())[seen.request_id]
    assert (row["outcome"], row["estimated"]) == ("upstream_broke", 1)
    await not_stored(full, body)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_an_answer_trickling_byte_by_byte_arrives_whole(start_full: StartFull,
                                                              stream: bool) -> None:
    """An upstream that sends its answer one byte per write, taking longer in all than the
    read timeout, is never cut (the timeout is per read): the answer arrives whole, restored,
    billed from its usage, and stored."""
    full = await start_full(upstream={"read_timeout_s": HANG_TIMEOUT_S})
    script = (Script(sse=chunks(["Hi ", f"{PLACEHOLDER}."]), byte_pause_s=0.002) if stream
              else Script(json=answer(), byte_pause_s=0.002))
    full.primary.script("/chat/completions", script)
    body = chat_body(stream=stream)
    seen = await full.post(body)
    assert seen.status == 200
    assert seen.text() == (f"Hi {EMAIL}." if stream else f"Hello {EMAIL}.")
    row = (await full.settled())[seen.request_id]
    assert (row["cost_nusd"], row["estimated"]) == (
        cost_nusd(7, 2) if stream else JSON_COST, 0)
    hit = await full.post(body)
    assert hit.headers["x-sidecar-cache"] == "HIT" and hit.text() == seen.text()


MALFORMED = {
    "truncated": b'{"id": "chatcmpl-x", "choices": [{"message": {"content": "<EMAIL_1>',
    "html": b"<html><body>502 Bad Gateway</body></html>",
    "array": b"[1, 2, 3]",
    "wrong_types": b'{"choices": "none", "usage": {"prompt_tokens": "7", "cost": "free"}}',
    "absurd_usage": orjson.dumps({**answer(), "usage": {
        "prompt_tokens": 7, "completion_tokens": 2**62, "total_tokens": 7, "cost": 1e300}}),
}


@pytest.mark.parametrize("name", list(MALFORMED))
async def test_malformed_json_is_relayed_as_sent_and_never_stored(full: Full,
                                                                  name: str) -> None:
    """A 200 whose body is not a chat completion is relayed as the upstream sent it (the
    sidecar never invents an answer); without usage it is readable it costs 0 (absurd figures,
    2^62 tokens or 1e300 USD, count as unreadable: believed, they spent every budget and
    overflowed the ledger's integers); it is never stored, nothing crashes."""
    full.primary.script("/chat/completions", Script(body=MALFORMED[name]))
    body = chat_body()
    seen = await full.post(body)
    assert (seen.status, seen.body) == (200, MALFORMED[name].replace(PLACEHOLDER.encode(),
                                                                     EMAIL.encode()))
    row = (await full.settled())[seen.request_id]
    assert row["cost_nusd"] == (cost_nusd(7, 0) if name == "absurd_usage" else 0)
    if name != "absurd_usage":  # a well-formed answer is stored; nothing else is
        await not_stored(full, body)
    await full.still_serving()


BROKEN_SSE = {
    # the upstream closes cleanly after its last event, without data: [DONE]
    "missing_done": Script(sse=chunks(), done=False),
    # a line of text and a data line that is not JSON, between good events
    "garbage_lines": Script(sse=[*chunks()[:2], b"upstream glitch\n\n",
                                 b"data: <html>oops</html>\n\n", *chunks()[2:]]),
    # the connection drops in the middle of an event
    "disconnect_mid_event": Script(sse=[*chunks()[:2], b'data: {"id":"chatcmpl-fake","ch',
                                        *chunks()[2:]], drop_after=3),
}


@pytest.mark.parametrize("name", list(BROKEN_SSE))
async def test_broken_event_streams(full: Full, name: str) -> None:
    """Broken streams reach the client as far as they are whole, never cached: a missing
    [DONE] is not invented; garbage lines pass through untouched (the stream goes on); an
    event cut mid-way is dropped and replaced by one error event."""
    full.primary.script("/chat/completions", BROKEN_SSE[name])
    body = chat_body(stream=True)
    seen = await full.post(body)
    events = seen.events()
    row = (await full.settled())[seen.request_id]
    if name == "disconnect_mid_event":
        assert not any(e.startswith(b'{"id":"chatcmpl-fake","ch') and not e.endswith(b"}")
                       for e in events)
        assert orjson.loads(events[-1])["error"]["code"] == "upstream_unavailable"
        assert (row["outcome"], row["estimated"]) == ("upstream_broke", 1)
    else:
        assert seen.text() == f"Hi {EMAIL}, bye"
        assert (events[-1] == b"[DONE]") is (name != "missing_done")
        if name == "garbage_lines":
            assert b"upstream glitch\n\ndata: <html>oops</html>\n\n" in seen.body
        assert (row["outcome"], row["cost_nusd"], row["estimated"]) == ("ok", STREAM_COST, 0)
    await not_stored(full, body)
    await full.still_serving()


async def test_an_event_over_one_megabyte(full: Full) -> None:
    """A single 1.5 MB event (with a placeholder at its very end) arrives whole and restored;
    billed from its usage; too big to store (cache.max_entry_bytes), so not stored."""
    big = "x" * 1_500_000
    full.primary.script("/chat/completions", Script(sse=chunks([big + PLACEHOLDER, " end"])))
    body = chat_body(stream=True)
    seen = await full.post(body)
    assert seen.text() == big + EMAIL + " end"
    row = (await full.settled())[seen.request_id]
    assert (row["cost_nusd"], row["estimated"]) == (cost_nusd(7, 2), 0)
    await not_stored(full, body)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_huge_answers(full: Full, stream: bool) -> None:
    """A 16 MB answer (one JSON body, or 1,024 events of 16 KB) reaches the client byte for
    byte after restoration, billed from its usage, not stored (over max_entry_bytes); the
    process goes on serving."""
    piece = "y" * 16_384
    if stream:
        pieces = [piece] * 1023 + [PLACEHOLDER]
        full.primary.script("/chat/completions", Script(sse=chunks(pieces)))
        expected, cost = piece * 1023 + EMAIL, cost_nusd(7, 1024)
    else:
        full.primary.script("/chat/completions", Script(json=answer(piece * 1024 + PLACEHOLDER)))
        expected, cost = piece * 1024 + EMAIL, JSON_COST
    body = chat_body(stream=stream)
    seen = await full.post(body)
    assert seen.status == 200 and seen.text() == expected
    row = (await full.settled())[seen.request_id]
    assert (row["cost_nusd"], row["estimated"]) == (cost, 0)
    await not_stored(full, body)
    await full.still_serving()
