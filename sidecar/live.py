"""Live reload: a new configuration applied without a restart, nothing dropped.

`Live` is what the app serves with now: the composed pipelines, the configuration's version,
when it was loaded and the last reload's error. The handler reads `live.pipelines` once per
request, so a request runs start to end on the pipelines it started with; a reload replaces
them in one assignment.

A reload (`Reloader.reload`: SIGHUP, the file watch, `POST /sidecar/reload`,
`llm-sidecar reload`) reads and validates the file with the same strict schema as at start.
An invalid file is refused: the running configuration keeps serving, and the error is logged,
counted (`llm_sidecar_config_reloads_total{result="invalid"}`) and shown by `/sidecar/config`
(`last_error`); /readyz stays ready. A valid one keeps the running value of every setting only a
restart can change (config/changes.py names them in the answer), then `Deps.rebuild` keeps the
state — the ledger, budgets spent and held, rate-limit windows, the cache, breakers and
averages — and rebuilds what derives from settings (the routing table, exporters whose settings
changed, the price book's configured prices), and the stage list is built again and swapped in.
What the reload replaced (an exporter) is closed once every request that started before the
swap has finished, or after the shutdown grace at most.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from sidecar.call import Stage
from sidecar.config.changes import changed_sections, keep_restart_only
from sidecar.config.loader import ConfigError
from sidecar.config.schema import Settings
from sidecar.deps import DEPS, Resource
from sidecar.pipeline import Pipelines, build_pipeline
from sidecar.runtime import RUNTIME

__all__ = ["LIVE", "Live", "ReloadResult", "Reloader"]

_log = structlog.get_logger("sidecar.reload")
Load = Callable[[], Settings]


@dataclass(slots=True)
class ReloadResult:
    applied: bool
    version: int
    changed: list[str] = field(default_factory=list)  # top-level sections that changed
    restart_required: list[str] = field(default_factory=list)  # kept at their running value
    error: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"applied": self.applied, "version": self.version, "changed": self.changed,
                "restart_required": self.restart_required, "error": self.error,
                "ms": round(self.seconds * 1000, 2)}


@dataclass(slots=True)
class Live:
    pipelines: Pipelines
    outer: Sequence[Stage] = ()  # the embedder's own stages (create_app's outer_stages)
    version: int = 1
    loaded_at: float = field(default_factory=time.time)  # Unix time
    last_error: str | None = None  # the last reload's, cleared by one that applies
    restart_required: list[str] = field(default_factory=list)
    reloader: Reloader | None = None  # set when the app knows how to read its config again

    def view(self) -> dict[str, Any]:
        """For /sidecar/config."""
        return {"version": self.version, "loaded_at": self.loaded_at,
                "last_error": self.last_error, "restart_required": self.restart_required,
                "reload": self.reloader is not None}


LIVE = web.AppKey("live", Live)


class Reloader:
    """Reads the configuration again and swaps it in; one reload at a time."""

    def __init__(self, app: web.Application, load: Load) -> None:
        self._app = app
        self._load = load
        self._lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()

    async def reload(self, source: str) -> ReloadResult:
        async with self._lock:
            started = time.monotonic()
            result = await self._reload()
            result.seconds = time.monotonic() - started
        deps = self._app[DEPS]
        if result.applied:
            deps.metrics.config_reload("ok", result.version)
            _log.info("config_reloaded", source=source, version=result.version,
                      changed=result.changed, restart_required=result.restart_required,
                      ms=round(result.seconds * 1000, 2))
        else:
            deps.metrics.config_reload("invalid", result.version)
            _log.error("config_reload_refused", source=source, version=result.version,
                       error=result.error)
        return result

    async def _reload(self) -> ReloadResult:
        live = self._app[LIVE]
        deps = self._app[DEPS]
        try:
            new = self._load()
        except ConfigError as exc:
            live.last_error = str(exc)
            return ReloadResult(False, live.version, error=live.last_error)
        running = deps.settings
        applied, kept = keep_restart_only(running, new)
        changed = changed_sections(running, applied)
        retired = await deps.rebuild(applied)
        pipelines = build_pipeline(deps, live.outer)
        # The swap: from here every new request runs on the new stages.
        before = set(self._app[RUNTIME].in_flight)
        live.pipelines = pipelines
        live.version += 1
        live.loaded_at = time.time()
        live.last_error = None
        live.restart_required = kept
        if retired:
            self._retire(retired, before, applied.listen.shutdown_grace_s)
        return ReloadResult(True, live.version, changed, kept)

    def _retire(self, resources: list[Resource], before: set[asyncio.Task[Any]],
                grace_s: float) -> None:
        async def close_when_done() -> None:
            pending = [task for task in before if not task.done()]
            if pending:
                await asyncio.wait(pending, timeout=grace_s)
            for resource in resources:
                try:
                    await resource.close()
                except Exception:
                    _log.exception("resource_close_failed", resource=resource.name)

        task = asyncio.ensure_future(close_when_done())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def close(self) -> None:
        """At shutdown: finish closing what reloads retired."""
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)

