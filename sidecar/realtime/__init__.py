"""Realtime: WebSocket sessions on /v1 (OpenAI's `/v1/realtime`), relayed both ways.

    client ── GET /v1/realtime?model=… (Upgrade: websocket) ──► handler (handshake.is_upgrade)
      telemetry → zdr → inspect → auth → read_session → realtime_spend → connect ──► upstream
      101 to the client only once the upstream said 101; then relay.py pumps frames both ways
      until either side closes; the spend meter (meter.py) holds, prices and records each
      response from the session's own events

    handshake.py  which requests are sessions, their Call (the subprotocol key), their model
    connect.py    the upstream handshake, the provider's key, refusals as HTTP answers
    relay.py      the session: frames, pings, closes both ways, shutdown, the watcher hook
    spend.py      the handshake's price and hold; meter.py: holds, prices and rows per response
    prices.py     text, audio and image token prices (the price book, else prices.json)
    stats.py      frames, bytes, close code: the session's access line and metrics
"""

from __future__ import annotations

from sidecar.call import Stage
from sidecar.deps import Deps
from sidecar.realtime.connect import Connect
from sidecar.realtime.handshake import ReadSession

__all__ = ["Connect", "realtime_stages"]


def realtime_stages(deps: Deps) -> list[Stage]:
    """The session's own stages, after those that need no body (pipeline/__init__.py)."""
    settings = deps.settings
    stages: list[Stage] = [ReadSession(blocking_redaction=settings.privacy.redact.mode == "block")]
    if deps.ledger is not None and deps.prices is not None:
        from sidecar.realtime.spend import RealtimeSpend

        stages.append(RealtimeSpend(settings.spend, deps.prices, deps.ledger, deps.metrics))
    return stages
