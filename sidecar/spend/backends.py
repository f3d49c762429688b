"""Which ledger backend the settings ask for."""

from __future__ import annotations

from sidecar.config.schema import Settings
from sidecar.spend.ledger import Ledger, sqlite_path
from sidecar.telemetry.metrics import Metrics


def open_ledger(settings: Settings, metrics: Metrics) -> Ledger | None:
    """The ledger these settings ask for (not started yet); None when `spend.ledger: off`."""
    url = settings.spend.ledger
    if url == "off":
        return None
    path = sqlite_path(settings)
    if path is not None:
        from sidecar.spend.ledger_sqlite import SqliteLedger
        return SqliteLedger(settings, metrics, path)
    from sidecar.spend.ledger_redis import RedisLedger  # imports redis only when used
    assert url is not None
    return RedisLedger(settings, metrics, url)
