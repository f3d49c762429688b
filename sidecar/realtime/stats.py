"""What one WebSocket session did, for its access line and its metrics (`call.session`).

The handler's Call for a session carries one `SessionStats` from the start (so a session refused
at the handshake is still counted as `endpoint="realtime"`); the relay fills it as frames pass
(two integer additions a frame) and once the session ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Closer = Literal["client", "upstream", "sidecar"]


@dataclass(slots=True)
class SessionStats:
    frames_in: int = 0  # frames the client sent (relayed upstream, or held back by the sidecar)
    bytes_in: int = 0  # their payload bytes
    frames_out: int = 0  # frames the upstream sent
    bytes_out: int = 0
    opened_at: float | None = None  # monotonic time both sides were upgraded
    closed_at: float | None = None
    closed_by: Closer | None = None
    close_code: int | None = None  # the code in the closing side's close frame; 1006 if none came
    close_reason: str = ""
    responses: int = 0  # `response.done` events seen (priced when spend is on)

    @property
    def seconds(self) -> float:
        if self.opened_at is None or self.closed_at is None:
            return 0.0
        return self.closed_at - self.opened_at

    def access_fields(self) -> dict[str, Any]:
        """The session's part of its access line (telemetry/access.py)."""
        if self.opened_at is None:  # refused at the handshake: the HTTP fields say it all
            return {}
        return {"session_ms": round(self.seconds * 1000, 3), "frames_in": self.frames_in,
                "frames_out": self.frames_out, "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out, "closed_by": self.closed_by,
                "close_code": self.close_code, "close_reason": self.close_reason,
                "responses": self.responses}
