"""Every module of the harness imports alone, in a fresh interpreter (no cycles between them)."""

from __future__ import annotations

import asyncio
import pkgutil
import sys

import bench

# bench.privacy_presidio runs inside the git-ignored Presidio venv (bench/.presidio-venv) only.
MODULES = sorted(m.name for m in pkgutil.walk_packages(bench.__path__, "bench.")
                 if m.name != "bench.privacy_presidio")


async def _import_alone(module: str) -> tuple[str, int, bytes]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", f"import {module}", stderr=asyncio.subprocess.PIPE)
    _, err = await process.communicate()
    return module, process.returncode or 0, err


async def test_every_harness_module_imports_alone() -> None:
    """`python -c "import bench.X"` succeeds for every module, each in its own process."""
    assert "bench.rows" in MODULES and "bench.verdicts" in MODULES
    results = await asyncio.gather(*map(_import_alone, MODULES))
    failures = {module: err.decode()[-300:] for module, code, err in results if code}
    assert failures == {}
