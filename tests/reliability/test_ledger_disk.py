"""The SQLite ledger's disk failing, with every feature on: a read-only directory, then made
writable; a full disk, then freed.

Where the test may mount (root with CAP_SYS_ADMIN, as on the project's CI machine), the disk
is a real tmpfs of 1 MiB: mounted read-only, or filled to its last byte with a file, so SQLite
meets the kernel's own EROFS / ENOSPC. Elsewhere it falls back to what an unprivileged user can
do: a directory without write permission, and a size-limited file (SQLite's
`max_page_count`, which fails writes with the same "database or disk is full").
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.spend.ledger_sqlite import SqliteLedger
from tests.fakes.waits import wait_until
from tests.reliability.conftest import StartFull
from tests.reliability.harness import Full, Seen, chat_body, cost_nusd

JSON_COST, STREAM_COST = cost_nusd(7, 6), cost_nusd(7, 3)


class Disk:
    """A directory for the ledger that the test can make read-only or full, and undo."""

    def __init__(self, root: Path) -> None:
        self.path = root / "disk"
        self.path.mkdir()
        self.tmpfs = _mount(self.path, "size=1m")
        self._filler = self.path / "filler"

    def read_only(self) -> None:
        if self.tmpfs:
            _remount(self.path, "ro")
        elif os.geteuid() == 0:  # root ignores permissions, and this one may not mount
            pytest.skip("root without CAP_SYS_ADMIN cannot make a directory read-only")
        else:
            self.path.chmod(0o555)

    def writable(self) -> None:
        if self.tmpfs:
            _remount(self.path, "rw")
        else:
            self.path.chmod(0o755)

    def fill(self, ledger: SqliteLedger) -> None:
        """No free byte left (tmpfs), or the ledger file may not grow by one page."""
        if self.tmpfs:
            with self._filler.open("wb", buffering=0) as filler:
                with contextlib.suppress(OSError):  # ENOSPC: full
                    while filler.write(b"\0" * 4096):
                        pass
        else:
            db = ledger._store.db
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(f"PRAGMA max_page_count = {pages}")

    def free(self, ledger: SqliteLedger) -> None:
        if self.tmpfs:
            self._filler.unlink()
        else:
            ledger._store.db.execute("PRAGMA max_page_count = 1073741823")

    def close(self) -> None:
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.path)], check=False,
                           capture_output=True)


def _mount(path: Path, options: str) -> bool:
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          check=False, capture_output=True)
    return done.returncode == 0


def _remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True,
                   capture_output=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    """Set up before the sidecar, so it is unmounted only after the sidecar closed its file."""
    made = Disk(tmp_path)
    yield made
    made.close()


def expected_cost(seen: Seen) -> int:
    if seen.headers.get("x-sidecar-cache") == "HIT" or seen.status != 200:
        return 0
    stream = seen.headers["Content-Type"].startswith("text/event-stream")
    return STREAM_COST if stream else JSON_COST


async def some(full: Full, count: int) -> list[Seen]:
    return list(await asyncio.gather(*(full.post(chat_body(stream=i % 2 == 1))
                                        for i in range(count))))


def ledger_of(full: Full) -> SqliteLedger:
    ledger = full.deps.ledger
    assert isinstance(ledger, SqliteLedger)
    return ledger


async def ready(full: Full) -> tuple[int, str]:
    async with full.http.get(f"{full.sidecar.url}/readyz") as response:
        return response.status, await response.text()


async def check_outage(full: Full, seen: list[Seen], mode: str, where: Path) -> None:
    """During the outage: fail_closed refuses (503, Retry-After, /readyz names the file),
    fail_open serves; /healthz stays 200 either way."""
    if mode == "fail_closed":
        assert all(s.status == 503 and s.refused_by_spend for s in seen), seen
        assert {s.headers["Retry-After"] for s in seen} == {"1"}
        status, text = await ready(full)
        assert status == 503 and str(where) in text
    else:
        assert {s.status for s in seen} == {200}
        assert (await ready(full))[0] == 200
    async with full.http.get(f"{full.sidecar.url}/healthz") as response:
        assert response.status == 200


async def check_recovered(full: Full) -> None:
    """Back: served again, every served request has one row billed right, and the budget
    counts exactly what the rows say."""
    assert {s.status for s in await some(full, 4)} == {200}
    assert (await ready(full))[0] == 200
    rows = await full.settled()
    assert [rows[s.request_id]["cost_nusd"] for s in full.seen if not s.refused_by_spend] == [
        expected_cost(s) for s in full.seen if not s.refused_by_spend]
    assert await full.spent_nusd() == sum(row["cost_nusd"] for row in rows.values())
    await full.still_serving()


def on_disk(disk: Disk, **spend: Any) -> dict[str, Any]:
    return {"spend": {"ledger": f"sqlite:///{disk.path}/ledger.db", **spend}}


@pytest.mark.parametrize("mode", ["fail_closed", "fail_open"])
async def test_read_only_ledger_directory_then_writable(disk: Disk, start_full: StartFull,
                                                        mode: str) -> None:
    """The ledger's directory is read-only at start: the process starts and never crashes,
    fails as configured; once the directory is writable the file is created within one
    flush interval and every served request gets its row (fail_open's kept in memory)."""
    disk.read_only()
    full = await start_full(**on_disk(disk, on_ledger_error=mode))
    await check_outage(full, await some(full, 6), mode, disk.path / "ledger.db")
    disk.writable()
    await wait_until(lambda: ledger_of(full).healthy, "the ledger opened its file")
    await check_recovered(full)


@pytest.mark.parametrize("mode", ["fail_closed", "fail_open"])
async def test_full_disk_then_freed_loses_nothing(disk: Disk, start_full: StartFull,
                                                  mode: str) -> None:
    """The disk fills up while serving: the next write fails (SQLite's "database or disk is
    full"), the rows are kept, fail_closed refuses new requests, fail_open serves them; once
    there is room every row is written: nothing lost, the budget exact."""
    full = await start_full(**on_disk(disk, on_ledger_error=mode))
    ledger = ledger_of(full)
    assert {s.status for s in await some(full, 6)} == {200}
    await ledger.flush()
    await ledger._in_thread(disk.fill, ledger)

    async def outage_began() -> bool:  # the rows of these requests do not fit any more
        seen = await full.post(chat_body())
        return not ledger.healthy or seen.status == 503

    await wait_until(outage_began, "a ledger write failed for want of space")
    during = await some(full, 6)
    await check_outage(full, during, mode, disk.path / "ledger.db")
    await ledger._in_thread(disk.free, ledger)
    await wait_until(lambda: ledger.healthy, "the ledger writes again")
    await check_recovered(full)
