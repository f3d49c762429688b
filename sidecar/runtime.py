"""Lifecycle state of one running sidecar, shared by its listeners: draining, in-flight work.

Created by `create_app`; handlers reach it as `request.config_dict[RUNTIME]`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(slots=True)
class Runtime:
    draining: bool = False
    in_flight: set[asyncio.Task[Any]] = field(default_factory=set)  # proxy requests being served
    cut: bool = False  # the shutdown grace period is over: what is still running gets cancelled

    def cut_in_flight(self) -> None:
        """End of the drain: cancel every proxy request still running. aiohttp's own shutdown
        would wait a second grace period for handlers that do not read their request body."""
        self.cut = True
        for task in list(self.in_flight):
            task.cancel()


RUNTIME = web.AppKey("runtime", Runtime)
