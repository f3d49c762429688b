"""Reading the load generators' output, and choosing among them; no load is generated here."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import drivers
from bench.loadgen import percentile, summarize_ms

HEY_OUTPUT = """
Summary:
  Total:\t15.0059 secs
  Slowest:\t0.0133 secs
  Fastest:\t0.0002 secs
  Average:\t0.0031 secs
  Requests/sec:\t4403.1558

Latency distribution:
  10% in 0.0005 secs
  50% in 0.0028 secs
  90% in 0.0049 secs
  99% in 0.0085 secs

Status code distribution:
  [200]\t66000 responses
  [502]\t40 responses

Error distribution:
  [3]\tPost "http://127.0.0.1:1/v1/chat/completions": EOF
  [2]\tPost "http://127.0.0.1:1/v1/chat/completions": context deadline exceeded
"""

WRK_OUTPUT = """Running 15s test @ http://127.0.0.1:1/v1/chat/completions
  1 threads and 32 connections
  7301 requests in 1.00s, 7.17MB read
Requests/sec:   7274.88
BENCH_JSON {"requests": 7301, "duration_us": 1003590, "connect": 1, "read": 2, "write": 0, \
"status": 5, "timeout": 3, "p50_us": 516, "p90_us": 750, "p99_us": 2442, "mean_us": 574.2, \
"max_us": 4976}
"""


def test_parse_hey_reads_rate_statuses_errors_and_percentiles() -> None:
    """hey's summary gives the rate, non-2xx answers, transport errors and latency in ms."""
    result = drivers.parse_hey(HEY_OUTPUT, cpu_s=1.5)
    assert result.rps == pytest.approx(4403.1558)
    assert result.requests == 66040
    assert result.non_2xx == 40
    assert result.errors == 5
    assert result.seconds == pytest.approx(15.0059)
    assert result.latency_ms == pytest.approx({"p50": 2.8, "p90": 4.9, "p99": 8.5, "mean": 3.1})
    assert result.cpu_s == 1.5


def test_parse_wrk_reads_the_lua_summary_line() -> None:
    """wrk's JSON line from the Lua done() hook gives requests, duration, errors and latency."""
    result = drivers.parse_wrk(WRK_OUTPUT)
    assert result.requests == 7301
    assert result.rps == pytest.approx(7301 / 1.00359)
    assert result.non_2xx == 5
    assert result.errors == 6
    assert result.latency_ms["p99"] == pytest.approx(2.442)


def test_parsers_refuse_output_without_a_summary() -> None:
    """A generator that printed no summary is a failure, not a zero."""
    with pytest.raises(drivers.DriverFailed):
        drivers.parse_wrk("Running 1s test\n")
    with pytest.raises(drivers.DriverFailed):
        drivers.parse_hey("connection refused\n")


def test_wrk_script_posts_the_body_file_with_every_header(tmp_path: Path) -> None:
    """The generated Lua script POSTs the body file with the JSON type and given headers."""
    load = drivers.Load("http://x/v1/chat/completions", tmp_path / "body.json",
                        (("Authorization", "Bearer sk-bench"),))
    script = drivers.wrk_script(load)
    assert "wrk.method = 'POST'" in script
    assert f'io.open("{tmp_path / "body.json"}"' in script
    assert "wrk.headers['Content-Type'] = 'application/json'" in script
    assert 'wrk.headers["Authorization"] = "Bearer sk-bench"' in script
    assert "done = function(summary, latency, requests)" in script


def test_auto_falls_back_to_asyncio_without_wrk_or_hey(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without wrk and hey, auto picks asyncio; naming a missing one says how to install it."""
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert drivers.installed() == ["asyncio"]
    assert drivers.pick("auto") == "asyncio"
    with pytest.raises(drivers.DriverFailed, match="apt-get install -y wrk"):
        drivers.pick("wrk")


def test_auto_prefers_wrk_then_hey(monkeypatch: pytest.MonkeyPatch) -> None:
    """wrk is preferred (least CPU per request), then hey."""
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    assert drivers.pick("auto") == "wrk"
    monkeypatch.setattr("shutil.which",
                        lambda name: "/usr/bin/hey" if name == "hey" else None)
    assert drivers.pick("auto") == "hey"


def test_percentile_interpolates_between_ranks() -> None:
    """Percentiles interpolate linearly; summaries are in milliseconds."""
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert percentile(list(map(float, range(101))), 99) == 99.0
    assert summarize_ms([0.001, 0.003])["p50"] == pytest.approx(2.0)
    assert summarize_ms([]) == {}
