"""The privacy stage on its own: what later stages see, and what it leaves alone."""

from __future__ import annotations

import orjson
from multidict import CIMultiDict

from sidecar.call import Call, Reply
from sidecar.config.privacy import RedactSettings
from sidecar.pipeline.privacy import Privacy
from sidecar.telemetry.metrics import Metrics
from tests.fakes.calls import make_call


class Later:
    """Stands for fallback, spend and cache: records what the call holds when it runs."""

    def __init__(self) -> None:
        self.raw: bytes | None = None
        self.changed = False

    async def __call__(self, call: Call) -> Reply:
        self.raw, self.changed = call.raw_body, call.body_changed
        return Reply(200, CIMultiDict(), body=b"{}")


async def test_later_stages_never_see_the_original_bytes() -> None:
    """After redaction both body and raw_body are redacted, and body_changed is set."""
    raw = b'{"model": "m", "messages": [{"role": "user", "content": "to a@b.example"}]}'
    call = make_call(body=orjson.loads(raw), raw_body=raw)
    later = Later()
    await Privacy(RedactSettings(mode="mask"), Metrics())(call, later)
    assert later.changed and later.raw is not None
    assert orjson.loads(later.raw)["messages"][0]["content"] == "to [EMAIL]"
    assert call.redactions == 1 and call.response_headers["x-sidecar-redactions"] == "1"


async def test_nothing_found_leaves_the_clients_bytes() -> None:
    """No finding: body_changed stays false and the client's exact bytes go upstream."""
    raw = b'{"model": "m",  "messages": [{"role": "user", "content": "hello"}]}'
    call = make_call(body=orjson.loads(raw), raw_body=raw)
    later = Later()
    await Privacy(RedactSettings(mode="pseudonymize"), Metrics())(call, later)
    assert (later.raw, later.changed) == (raw, False)
    assert call.upstream_body() == raw
