"""`--profile`: where the sidecar spends its CPU under load, sampled with py-spy.

After the measurements (never during them: sampling slows the target), the sidecar gets one
more throughput slice while `py-spy record` samples it. The collapsed stacks are saved
(`sidecar-profile.txt`: feed it to flamegraph.pl or speedscope) and summarized here as the
functions with the most samples on top of the stack (self) and anywhere in it (inclusive).
Only samples of the thread holding the GIL are kept (`--gil`): the CPU spent in Python, on the
event loop or in the exporter and ledger threads, without the threads that only wait.
py-spy is not a dependency: `pip install py-spy` (anywhere on PATH, or in the venv).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME_LINE = re.compile(r":\d+\)$")


def find_py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start(py_spy: str, pid: int, seconds: float, out: Path, rate: int = 250
          ) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
         "--rate", str(rate), "--gil", "--format", "raw", "--output", str(out)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    _, err = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise RuntimeError(f"py-spy exited with status {process.returncode}: "
                           f"{err.decode(errors='replace')[-500:]}")


def top_functions(collapsed: str, count: int = 15) -> dict[str, Any]:
    """Self and inclusive shares of samples per function, from py-spy's raw output
    (`frame;frame;... N` per line, each frame `function (file:line)`)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        samples = int(n)
        total += samples
        frames = [_FRAME_LINE.sub(")", frame) for frame in stack.split(";")]
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if not total:
        return {"samples": 0, "self": [], "inclusive": []}

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        # Frames in (nearly) every sample are the entry point and the event loop: no news.
        ranked = [(f, n) for f, n in counter.most_common() if n < total * 0.99][:count]
        return [{"function": f, "pct": n / total * 100} for f, n in ranked]
    return {"samples": total, "self": share(own), "inclusive": share(inclusive)}
