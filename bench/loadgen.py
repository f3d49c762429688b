"""The asyncio load generator, run as its own process so it never shares the target's loop.

Two modes, each printing one JSON object on stdout:

- `closed`: N workers on N keep-alive connections send back to back for a duration
  (throughput; what `hey -c N -z D` and `wrk -c N -d D` do).
- `open`: an open-loop schedule at a fixed rate: request i is sent at start + i/rate whether
  or not earlier ones have answered, and its latency is counted from that scheduled instant,
  so a slow answer cannot hide the requests that should have gone out meanwhile (no
  coordinated omission). The loop sleeps until ~2 ms before each instant and spins the rest,
  because event-loop timers are millisecond-grained; `send_lag_ms` reports how late sends were.
  The raw samples are in the output too (`samples_ms`, `lags_ms`). When an answer is an event
  stream, each read is timed as it arrives (`StreamTimes`): time to the first event (TTFT,
  also from the scheduled instant), the gaps between events, and how many events arrived in
  the same read as the one before (`coalesced`: a proxy that buffers shows up there).

    python -m bench.loadgen open --url http://127.0.0.1:9002/v1/chat/completions \
        --body body.json --rate 100 --duration 15
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Awaitable, Coroutine, Sequence
from pathlib import Path
from time import perf_counter, process_time
from typing import Any

import aiohttp
import orjson

_SPIN_S = 0.002  # wake this long before a scheduled instant, then spin to it


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99, mean, min and max of samples given in seconds, in milliseconds."""
    if not seconds:
        return {}
    ms = [s * 1000 for s in seconds]
    return {"p50": percentile(ms, 50), "p90": percentile(ms, 90), "p99": percentile(ms, 99),
            "mean": sum(ms) / len(ms), "min": min(ms), "max": max(ms)}


def _session(headers: dict[str, str], connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, limit_per_host=0),
        headers={"Content-Type": "application/json", **headers},
        timeout=aiohttp.ClientTimeout(total=60),
        cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False)


class StreamTimes:
    """When the events of one event stream arrived, from the reads that carried them.

    Only `data:` events with a payload count (not `[DONE]`, which a server may send together
    with the last chunk). An event counts as coalesced when it completed in the same read as
    the event before it: the fake upstream sends each chunk after a pause, so through a proxy
    that relays chunk by chunk every event arrives in a read of its own.
    """

    __slots__ = ("_partial", "coalesced", "first", "times")

    def __init__(self) -> None:
        self.first: float | None = None
        self.times: list[float] = []
        self.coalesced = 0
        self._partial = b""

    def feed(self, data: bytes, now: float) -> None:
        *events, self._partial = (self._partial + data).replace(b"\r\n", b"\n").split(b"\n\n")
        fresh = sum(1 for e in events if _has_data(e))
        if not fresh:
            return
        if self.first is None:
            self.first = now
        self.coalesced += fresh - 1
        self.times.extend([now] * fresh)

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]


def _has_data(event: bytes) -> bool:
    """A `data:` line with a payload (an `event:` line may come first, as Anthropic's do)."""
    return any(line.startswith(b"data:") and line[5:].strip() != b"[DONE]"
               for line in event.split(b"\n"))


class _Tally:
    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.ttft: list[float] = []  # event streams only
        self.gaps: list[float] = []
        self.events = 0
        self.coalesced = 0

    async def send(self, session: aiohttp.ClientSession, url: str, body: bytes,
                   since: float, *, time_streams: bool = False) -> None:
        try:
            async with session.post(url, data=body) as response:
                if time_streams and response.content_type == "text/event-stream":
                    times = StreamTimes()
                    async for data in response.content.iter_any():
                        times.feed(data, perf_counter())
                    if times.first is not None:
                        self.ttft.append(times.first - since)
                        self.gaps += times.gaps()
                        self.events += len(times.times)
                        self.coalesced += times.coalesced
                else:
                    await response.read()
                self.statuses[response.status] += 1
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.errors[type(exc).__name__] += 1
            return
        self.latencies.append(perf_counter() - since)

    def result(self, elapsed: float, cpu_s: float) -> dict[str, Any]:
        completed = sum(self.statuses.values())
        return {
            "requests": completed, "seconds": elapsed, "cpu_s": cpu_s,
            "rps": completed / elapsed if elapsed > 0 else 0.0,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "non_2xx": sum(v for k, v in self.statuses.items() if not 200 <= k < 300),
            "errors": sum(self.errors.values()), "error_kinds": dict(self.errors),
            "latency_ms": summarize_ms(self.latencies),
        }


async def closed_loop(url: str, body: bytes, headers: dict[str, str], *, concurrency: int,
                      duration: float) -> dict[str, Any]:
    tally = _Tally()
    async with _session(headers, concurrency) as session:
        began, cpu = perf_counter(), process_time()
        deadline = began + duration

        async def worker() -> None:
            while (start := perf_counter()) < deadline:
                await tally.send(session, url, body, start)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return tally.result(perf_counter() - began, process_time() - cpu)


async def _sleep_until(instant: float) -> None:
    remaining = instant - perf_counter()
    if remaining > _SPIN_S:
        await asyncio.sleep(remaining - _SPIN_S)
    while perf_counter() < instant:
        pass


async def open_loop(url: str, body: bytes, headers: dict[str, str], *, rate: float,
                    duration: float) -> dict[str, Any]:
    tally = _Tally()
    lags: list[float] = []
    count = max(int(rate * duration), 1)
    async with _session(headers, 0) as session:
        for _ in range(3):  # open a keep-alive connection before the clock starts
            await _Tally().send(session, url, body, perf_counter())

        async def one(due: float) -> None:
            lags.append(perf_counter() - due)
            await tally.send(session, url, body, due, time_streams=True)

        began, cpu = perf_counter() + 0.01, process_time()
        pending: list[Awaitable[None]] = []
        for i in range(count):
            due = began + i / rate
            await _sleep_until(due)
            pending.append(asyncio.ensure_future(one(due)))
        await asyncio.gather(*pending)
        result = tally.result(perf_counter() - began, process_time() - cpu)
    result.update(rate=rate, scheduled=count, send_lag_ms=summarize_ms(lags),
                  # raw, so that a caller can pool rounds before taking percentiles
                  samples_ms=_ms(tally.latencies), lags_ms=_ms(lags),
                  ttft_ms=_ms(tally.ttft), gaps_ms=_ms(tally.gaps),
                  events=tally.events, coalesced=tally.coalesced)
    return result


def _ms(seconds: list[float]) -> list[float]:
    return [round(s * 1000, 4) for s in seconds]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("closed", "open"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", type=Path, required=True, help="file with the JSON body")
    parser.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    parser.add_argument("--concurrency", type=int, default=32, help="closed: connections")
    parser.add_argument("--duration", type=float, default=10.0, help="closed/open: seconds")
    parser.add_argument("--rate", type=float, default=100.0, help="open: requests per second")
    args = parser.parse_args(argv)
    body = args.body.read_bytes()
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    job: Coroutine[Any, Any, dict[str, Any]]
    if args.mode == "closed":
        job = closed_loop(args.url, body, headers, concurrency=args.concurrency,
                          duration=args.duration)
    else:
        job = open_loop(args.url, body, headers, rate=args.rate, duration=args.duration)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        result = asyncio.run(job)
    else:
        result = uvloop.run(job)
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
