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
    # WebSocket sessions being relayed (realtime/relay.py): ended, each after its response in
    # progress, when shutdown begins, rather than held open until the grace period cuts them
    sessions: set[Any] = field(default_factory=set)

    def end_sessions(self) -> None:
        for session in list(self.sessions):
            session.end(1001, "sidecar shutting down")

    def cut_in_flight(self) -> None:
        """End of the drain: cancel every proxy request still running. aiohttp's own shutdown
        would wait a second grace period for handlers that do not read their request body."""
        self.cut = True
        for task in list(self.in_flight):
            task.cancel()


RUNTIME = web.AppKey("runtime", Runtime)
