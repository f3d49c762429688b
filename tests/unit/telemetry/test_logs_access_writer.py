"""The batched access-log writer: same JSON shape as structlog lines, fewer writes."""

from __future__ import annotations

import io

import orjson

from sidecar.config.schema import LogSettings as Logs
from sidecar.telemetry import logs as sidecar_logging
from sidecar.telemetry.logs import AccessWriter
from tests.fakes.waits import wait_until


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1


async def test_lines_are_batched_then_flushed_by_the_timer() -> None:
    """Many lines in one interval cost one write; nothing is lost."""
    stream = CountingStream()
    writer = AccessWriter(Logs(), stream=lambda: stream)
    for i in range(100):
        writer.write("info", {"request_id": str(i), "status": 200})
    assert stream.getvalue() == ""
    await wait_until(lambda: stream.flushes > 0, "the timer flushed")
    # all 100 lines were in that first write: nothing is left for another one
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == [str(i) for i in range(100)]
    assert stream.flushes == 1
    assert list(lines[0]) == ["request_id", "status", "event", "level", "timestamp"]
    assert lines[0]["event"] == "request" and lines[0]["level"] == "info"
    assert lines[0]["timestamp"].endswith("Z")


async def test_large_batches_flush_early_and_flush_is_explicit() -> None:
    """A full buffer is written at once; flush() writes whatever is pending."""
    stream = CountingStream()
    writer = AccessWriter(Logs(), stream=lambda: stream)
    big = "x" * (sidecar_logging.FLUSH_BYTES // 4)
    for _ in range(5):
        writer.write("info", {"pad": big})
    assert stream.flushes == 1
    writer.flush()
    assert stream.flushes == 2
    assert len(stream.getvalue().splitlines()) == 5


async def test_level_threshold() -> None:
    """Lines below the configured level are dropped (probes log at debug)."""
    stream = CountingStream()
    writer = AccessWriter(Logs(level="warning"), stream=lambda: stream)
    writer.write("info", {"a": 1})
    writer.write("debug", {"a": 2})
    writer.flush()
    assert stream.getvalue() == ""
    debug = AccessWriter(Logs(level="debug"), stream=lambda: stream)
    debug.write("debug", {"a": 3})
    debug.flush()
    assert orjson.loads(stream.getvalue())["a"] == 3


async def test_console_format() -> None:
    """format: console renders access lines for people, through structlog's renderer."""
    stream = CountingStream()
    writer = AccessWriter(Logs(format="console"), stream=lambda: stream)
    writer.write("info", {"status": 200, "path": "/v1/models"})
    writer.flush()
    text = stream.getvalue()
    assert "request" in text and "status=200" in text and "path=/v1/models" in text


async def test_timestamp_matches_structlog_format() -> None:
    """Access lines carry the same ISO UTC timestamp format as structlog's lines."""
    from datetime import UTC, datetime, timedelta

    stream = CountingStream()
    writer = AccessWriter(Logs(), stream=lambda: stream)
    before = datetime.now(UTC)
    writer.write("info", {})
    writer.flush()
    stamp = orjson.loads(stream.getvalue())["timestamp"]
    parsed = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    slack = timedelta(milliseconds=1)  # float rounding at the microsecond, not a timing check
    assert before - slack <= parsed <= datetime.now(UTC) + slack
