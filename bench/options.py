"""The settings of one run (`python -m bench` flags), and the smoke-sized `--quick` ones."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench import rows

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Options:
    duration: float = 10.0  # throughput seconds per target, split over the rounds
    # Open-loop seconds per target, split over the rounds. On a small VM one round's p50 swings
    # by +-0.5 ms (CPU wake-up); 60 s pooled over 6 rounds settled the core's p50 gap to the
    # floor within ~0.1 ms. With 16 targets, 30 s keeps a full run near 15 minutes, and the
    # targets of every-feature rows (p50 within 0.5 ms, p99 within 1 ms) allow more than the
    # core's 0.3 ms; use --latency-duration 60 to judge that one finely.
    latency_duration: float = 30.0
    rounds: int = 5
    rate: float = 100.0
    concurrency: int = 32
    warmup: float = 2.0
    startup_spawns: int = 5
    chunks: int = 20
    pacing_ms: float = 10.0
    soak: float = 60.0  # seconds of full load with RSS sampled, on each of the soak rows
    rss_requests: int = 20_000  # RSS is judged once a process has served this many
    rows: tuple[str, ...] = rows.ROW_NAMES
    peers: tuple[str, ...] = ()
    soak_rows: tuple[str, ...] | None = None  # None: `all`, else the first row
    profile_rows: tuple[str, ...] | None = None  # None: floor, core, all
    driver: str = "auto"
    sidecar_config: Path | None = None  # adds a row "custom" with this file
    access_log: bool = True  # False: SIDECAR_LOG_LEVEL=warning
    pin: bool = True
    headers: tuple[tuple[str, str], ...] = ()  # --header: on every request to every target
    results_dir: Path = REPO / "bench" / "results"
    json_path: Path | None = None
    quick: bool = False
    profile: bool = False  # sample targets with py-spy after the measurements
    profile_seconds: float = 10.0
    # issue 23's harness with hey beside the in-house one (bench/external.py); None: when
    # hey is installed. Its rounds, burst size and seconds at the fixed rate:
    external: bool | None = None
    external_rounds: int = 3
    external_burst: int = 6000
    external_rate_s: float = 6.0
    install_generators: bool = False  # --install-generators: apt-get install hey wrk


QUICK = {"duration": 2.0, "latency_duration": 2.0, "rounds": 1, "warmup": 1.0,
         "startup_spawns": 2, "soak": 3.0, "rss_requests": 2_000,
         "external_rounds": 1, "external_burst": 2_000, "external_rate_s": 2.0}


def relative(path: Path) -> str:
    """A path relative to the working directory when it is under it (shorter in reports)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
