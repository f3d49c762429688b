"""Processes under measurement: spawn, pin to CPUs, wait until ready, sample, stop.

Every service runs in its own session (Ctrl-C reaches only the harness, which then stops them
in order) and, on Linux, dies with the harness if the harness itself is killed. `Fleet` is the
one place that owns them: leaving it, normally or by an exception, sends SIGTERM to each, waits,
and kills what is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

_PR_SET_PDEATHSIG = 1
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ServiceFailed(RuntimeError):
    """A service exited or never became ready; the message ends with its log's last lines."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, what: str, timeout: float = 10.0) -> None:
    """Until something accepts TCP connections on the loopback port; RuntimeError after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"{what} did not start")


def child_setup(cpus: frozenset[int] | None) -> Callable[[], None]:
    """What a child runs before exec: pin its CPUs and ask to die with its parent."""
    def setup() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    return setup


def pin(pid: int, cpus: frozenset[int] | None) -> None:
    """Move every thread of a running process onto `cpus` (what `taskset -a -p` does)."""
    if not cpus:
        return
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), cpus)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def loop_cpu_seconds(pid: int) -> float:
    """CPU time of the process's main thread alone (the event loop's, in a sidecar): what is
    left of `cpu_seconds` ran on other threads (exporters, the ledger writer, gRPC's own)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, steal): CPU seconds all CPUs spent busy, and those the hypervisor took away."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, steal = fields[0], fields[1], fields[2], fields[7]
    # irq and softirq are left out, like in per-process times: loopback traffic is softirq.
    return (user + nice + system) / _CLOCK_TICKS, steal / _CLOCK_TICKS


def own_cpu_seconds(services: Iterable[Service]) -> float:
    """CPU used so far by this process, its reaped children and the running services."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
    for service in services:
        with contextlib.suppress(OSError):
            total += cpu_seconds(service.pid)
    return total


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB: resident memory now, and its peak since start."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024  # kB
    return values["VmRSS"], values["VmHWM"]


def http_status(url_host: str, port: int, path: str, timeout: float = 1.0) -> int | None:
    """The status of GET path, or None while nothing answers."""
    conn = http.client.HTTPConnection(url_host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


@dataclass
class Service:
    name: str
    port: int
    ready_path: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    spawned_at: float  # time.perf_counter() just before the spawn
    argv: tuple[str, ...] = ()
    ready_any: bool = False  # ready on any HTTP answer (a receiver with no health route)
    exit_status: int | None = field(default=None)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0, poll: float = 0.002) -> float:
        """Block until GET ready_path answers 200 (any status with `ready_any`); return
        seconds since the spawn."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            status = http_status("127.0.0.1", self.port, self.ready_path)
            if status == 200 or (self.ready_any and status is not None):
                return time.perf_counter() - self.spawned_at
            if self.popen.poll() is not None:
                raise ServiceFailed(f"{self.name} exited with status {self.popen.returncode} "
                                    f"before it was ready{self.log_tail()}")
            time.sleep(poll)
        raise ServiceFailed(f"{self.name} was not ready after {timeout:.0f} s{self.log_tail()}")

    def stop(self, grace: float = 10.0) -> int:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL. Returns the exit status."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.exit_status = self.popen.returncode
        return self.exit_status

    def log_tail(self, lines: int = 15) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return ":\n  " + "\n  ".join(tail) if tail else " (its log is empty)"


class Fleet:
    """Owns every service of a run; stops them all (last started first) on exit."""

    def __init__(self, log_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self._log_dir = log_dir
        self._env = dict(os.environ if env is None else env)
        self._services: list[Service] = []

    def spawn(self, name: str, argv: Sequence[str], *, port: int, ready_path: str,
              cpus: frozenset[int] | None, env: Mapping[str, str] | None = None,
              log_name: str | None = None, ready_any: bool = False) -> Service:
        """Start argv with stdout and stderr to a log file; `env` replaces the environment."""
        log_path = self._log_dir / (log_name or f"{name}.log")
        with log_path.open("wb") as log:
            began = time.perf_counter()
            popen = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=dict(self._env if env is None else env), start_new_session=True,
                preexec_fn=child_setup(cpus))
        service = Service(name, port, ready_path, popen, log_path, began, tuple(argv), ready_any)
        self._services.append(service)
        return service

    @property
    def services(self) -> list[Service]:
        return list(self._services)

    def stop(self, service: Service) -> int:
        status = service.stop()
        self._services.remove(service)
        return status

    def stop_all(self) -> None:
        while self._services:
            self.stop(self._services[-1])

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop_all()


def dead(services: Iterable[Service]) -> list[str]:
    """Names of services that have died; empty when all are still up."""
    return [s.name for s in services if s.popen.poll() is not None]
