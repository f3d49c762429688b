"""Layering: every module of the package imports alone, in a fresh interpreter (no cycles, no
import-time side effects that depend on another module having been imported first)."""

from __future__ import annotations

import asyncio
import pkgutil
import sys

import sidecar

# sidecar.__main__ is `python -m sidecar`: importing it runs the command line, by design.
MODULES = sorted(m.name for m in pkgutil.walk_packages(sidecar.__path__, "sidecar.")
                 if m.name != "sidecar.__main__")


async def _import_alone(module: str) -> tuple[str, int, bytes]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", f"import {module}", stderr=asyncio.subprocess.PIPE)
    _, err = await process.communicate()
    return module, process.returncode or 0, err


async def test_every_module_imports_alone() -> None:
    """`python -c "import sidecar.X"` succeeds for every module, each in its own process."""
    assert len(MODULES) > 20
    results = await asyncio.gather(*map(_import_alone, MODULES))
    failures = {module: err.decode()[-300:] for module, code, err in results if code}
    assert failures == {}
