"""Watch the configuration file and call back when its content changes.

Polls: every `reload.poll_s` seconds it reads the file through its path (following every
symlink) and compares a digest of the bytes with the last one. That catches every way a file
is replaced: an edit in place, an editor's write-and-rename, and a Kubernetes ConfigMap or
Secret update, which the kubelet makes by pointing the `..data` symlink of the mounted
directory at a new timestamped directory in one atomic rename (the file's own path, inode and
mtime may all stay the same through the symlinks; its content is what changes). A file that is
briefly missing or unreadable is skipped, not an error. A volume mounted with `subPath` never
sees updates at all: the kubelet does not refresh those (mount the whole ConfigMap instead).

Reading a few kilobytes every two seconds costs nothing measurable; inotify would miss the
symlink swap unless it watched the directory, and is Linux-only.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

__all__ = ["watch_file"]

_log = structlog.get_logger("sidecar.reload")


def digest(path: Path) -> bytes | None:
    """The file's content digest, or None when it cannot be read right now."""
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None


async def watch_file(path: Path, interval: Callable[[], float],
                     changed: Callable[[], Awaitable[object]]) -> None:
    """Run until cancelled: `await changed()` after each change of `path`'s content.
    `interval()` is read before every poll (a reload may change it)."""
    last = await asyncio.to_thread(digest, path)
    while True:
        await asyncio.sleep(interval())
        now = await asyncio.to_thread(digest, path)
        if now is None or now == last:
            continue
        last = now
        try:
            await changed()
        except Exception:  # the watch must outlive any one reload
            _log.exception("config_watch_failed", path=str(path))
