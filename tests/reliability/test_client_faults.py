"""Clients that leave, with every feature on: mid-stream, before the answer, and while other
identical requests wait on the same upstream call (single-flight).

What must hold: a client alone leaving a stream cancels its upstream request, billed for what
it received (an estimate); a client leaving a whole (JSON) answer does not: the answer is read
in the background and billed what the upstream reported, its hold kept until then (issue 18);
the half-read answer is never stored; requests following the same upstream call still get the
whole answer; nothing stays checked out or held (`Full.settled`)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.fakes.upstream import Script, chat_answer, chat_chunks
from tests.fakes.waits import wait_until
from tests.reliability.harness import (
    EMAIL,
    MODEL,
    PLACEHOLDER,
    TOKEN,
    Full,
    Seen,
    chat_body,
    cost_nusd,
)

PIECES = ["Hi ", PLACEHOLDER, ", bye", " for now"]


async def read_event(response: aiohttp.ClientResponse) -> None:
    """Read one whole event of a streamed response."""
    while (line := await asyncio.wait_for(response.content.readline(), timeout=10)) != b"\n":
        assert line


class Leaver:
    """A client that sends a request and goes away when told (its own connection)."""

    def __init__(self, full: Full, body: dict[str, Any]) -> None:
        self.full, self.body = full, body
        self.session = aiohttp.ClientSession()
        self.response: aiohttp.ClientResponse | None = None
        self.task = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        self.response = await self.session.post(
            f"{self.full.sidecar.v1}/chat/completions", json=self.body,
            headers={"Authorization": f"Bearer {TOKEN}"})

    async def headers(self) -> aiohttp.ClientResponse:
        await self.task
        assert self.response is not None
        return self.response

    async def leave(self, status: int) -> str | None:
        """Disconnect; `status` is what the sidecar records (499 before its headers). The
        request id, when the headers had come."""
        if not self.task.done():
            self.task.cancel()
        request_id = None
        if self.task.done() and not self.task.cancelled() and self.response is not None:
            request_id = self.response.headers["x-sidecar-request-id"]
            self.response.close()
        await self.session.close()
        if request_id is not None:
            self.full.seen.append(Seen(request_id, status, {}, b""))
        return request_id


def inspector_ids(full: Full) -> set[str]:
    inspector = full.deps.inspector
    assert inspector is not None
    records, _ = inspector.since(0, 1000)
    return {record.request_id for record in records}


async def test_leaving_mid_stream_cancels_upstream_and_settles(full: Full) -> None:
    """A client alone leaves after the first event: the upstream request is closed, the hold
    settled to an estimate of what was received, the half answer not stored."""
    gate = asyncio.Event()
    full.primary.script("/chat/completions", Script(sse=chat_chunks(MODEL, PIECES),
                                                    wait_before={2: gate}))
    body = chat_body(stream=True)
    client = Leaver(full, body)
    await read_event(await client.headers())
    await client.leave(200)  # the status line had gone out
    await asyncio.wait_for(full.primary.aborted.wait(), timeout=10)
    row = (await full.settled())[full.seen[-1].request_id]
    assert (row["outcome"], row["estimated"]) == ("client_disconnected", 1)
    assert row["cost_nusd"] > 0
    again = await full.post(body)
    assert again.headers["x-sidecar-cache"] == "MISS"
    await full.still_serving()


async def test_leaving_before_the_answer_is_read_in_the_background_and_billed(
        full: Full) -> None:
    """A client alone leaves while the upstream is still thinking: the upstream request goes
    on, its answer is read in the background, and the 499 row is billed what the upstream
    reported (not 0, not estimated): what the provider bills."""
    gate = asyncio.Event()
    full.primary.script("/chat/completions", Script(json=chat_answer(MODEL), hold=gate))
    background = full.deps.background
    assert background is not None
    adopted = background.adopted
    before = inspector_ids(full)
    client = Leaver(full, chat_body())
    await wait_until(lambda: len(full.primary.requests) == 1, "the upstream got the request")
    await client.leave(499)
    await background.wait_adopted(adopted + 1)
    gate.set()
    await background.wait_idle()
    await wait_until(lambda: len(inspector_ids(full) - before) == 1, "the request ended")
    (request_id,) = inspector_ids(full) - before
    full.seen.append(Seen(request_id, 499, {}, b""))
    row = (await full.settled())[request_id]
    assert (row["outcome"], row["cost_nusd"], row["estimated"]) == (
        "client_disconnected", cost_nusd(7, 6), 0)
    assert not full.primary.aborted.is_set()
    await full.still_serving()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_followers_are_answered_when_the_leader_leaves(full: Full, stream: bool) -> None:
    """The client that started an upstream call leaves while two identical requests follow
    it: the upstream call goes on (not cancelled), both followers get the whole answer,
    restored; it is stored; every hold is settled.

    Billing, as documented: the leader pays for its upstream call (a stream: what it received,
    an estimate; JSON: the whole answer, read in the background after it left), the followers
    are hits (0, the answer's cost counted as saved)."""
    gate = asyncio.Event()
    script = (Script(sse=chat_chunks(MODEL, PIECES), wait_before={2: gate}) if stream else
              Script(json=chat_answer(MODEL, f"Hello {PLACEHOLDER}."), hold=gate))
    full.primary.script("/chat/completions", script)
    body = chat_body(stream=stream, text=f"same question, {EMAIL}")
    flights = full.deps.flights
    assert flights is not None
    before = inspector_ids(full)
    leader = Leaver(full, body)
    if stream:
        await read_event(await leader.headers())
    else:
        await wait_until(lambda: flights.followers() == 1, "the leader's flight started")
    followers = [asyncio.ensure_future(full.post(body)) for _ in range(2)]
    await wait_until(lambda: flights.followers() == 3, "two requests follow the leader")
    background = full.deps.background
    assert background is not None
    adopted = background.adopted
    leader_id = await leader.leave(200 if stream else 499)
    if stream:
        await wait_until(lambda: flights.followers() == 2, "the leader left")
    else:  # still reading its answer in the background, to bill it
        await background.wait_adopted(adopted + 1)
    gate.set()
    answers = await asyncio.gather(*followers)
    expected = f"Hi {EMAIL}, bye for now" if stream else f"Hello {EMAIL}."
    assert [(a.status, a.text(), a.headers["x-sidecar-cache"]) for a in answers] == [
        (200, expected, "HIT")] * 2
    assert not full.primary.aborted.is_set()
    if not stream:
        await wait_until(lambda: len(inspector_ids(full) - before) == 3, "all three ended")
        (leader_id,) = inspector_ids(full) - before - {a.request_id for a in answers}
        full.seen.append(Seen(leader_id, 499, {}, b""))
    rows = await full.settled()
    assert leader_id is not None
    leader_row = rows[leader_id]
    assert leader_row["outcome"] == "client_disconnected"
    answer_cost = cost_nusd(7, len(PIECES)) if stream else cost_nusd(7, 6)
    assert leader_row["estimated"] == stream and leader_row["cost_nusd"] > 0
    if not stream:
        assert leader_row["cost_nusd"] == answer_cost
    for seen in answers:
        row = rows[seen.request_id]
        assert (row["cache_hit"], row["cost_nusd"], row["saved_nusd"]) == (1, 0, answer_cost)
    hit = await full.post(body)
    assert (hit.headers["x-sidecar-cache"], hit.text()) == ("HIT", expected)


async def test_a_follower_leaving_does_not_disturb_the_leader(full: Full) -> None:
    """A follower leaves mid-stream: the leader's stream completes, billed from its usage;
    the upstream call is not cancelled."""
    gate = asyncio.Event()
    full.primary.script("/chat/completions", Script(sse=chat_chunks(MODEL, PIECES),
                                                    wait_before={2: gate}))
    body = chat_body(stream=True)
    flights = full.deps.flights
    assert flights is not None
    leader = asyncio.ensure_future(full.post(body))
    await wait_until(lambda: flights.followers() == 1, "the leader's flight started")
    follower = Leaver(full, body)
    await read_event(await follower.headers())
    await wait_until(lambda: flights.followers() == 2, "the follower joined")
    follower_id = await follower.leave(200)
    await wait_until(lambda: flights.followers() == 1, "the follower left")
    gate.set()
    seen = await leader
    assert seen.text() == f"Hi {EMAIL}, bye for now"
    rows = await full.settled()
    assert not full.primary.aborted.is_set()
    row = rows[seen.request_id]
    assert (row["cost_nusd"], row["estimated"], row["cache_hit"]) == (
        cost_nusd(7, len(PIECES)), 0, 0)
    assert follower_id is not None
    assert rows[follower_id]["outcome"] == "client_disconnected"
