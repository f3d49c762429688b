"""GET /sidecar/config's view of the settings: secrets always masked."""

from __future__ import annotations

import orjson

from sidecar.admin.config_view import MASK, public_config
from sidecar.config import Settings


def test_every_secret_is_masked() -> None:
    """Keys, tokens, credential headers and URL passwords show as ***; the rest is shown."""
    settings = Settings.model_validate({
        "admin": {"token": "adm-secret"},
        "upstream": {"api_key": "sk-upstream-secret",
                     "headers": {"X-Title": "my-app", "X-Api-Key": "hdr-secret"}},
        "providers": [{"name": "p", "base_url": "https://p.example/v1", "api_key": "prov-secret",
                       "headers": {"Authorization": "Bearer prov-hdr-secret"}}],
        "auth": {"keys": [{"name": "team", "token": "tok-secret"}]},
        "cache": {"redis_url": "redis://user:redis-secret@redis:6379/0"},
        "telemetry": {"exporters": [{"endpoint": "https://x", "headers": {
            "Authorization": "Basic exp-secret"}}]},
    })
    view = public_config(settings)
    text = orjson.dumps(view).decode()
    assert "secret" not in text
    assert view["upstream"]["api_key"] == MASK
    assert view["upstream"]["headers"] == {"X-Title": "my-app", "X-Api-Key": MASK}
    assert view["auth"]["keys"][0] == {"name": "team", "token": MASK, "tags": [],
                                       "allowed_models": ["*"], "not_before": None,
                                       "not_after": None}
    assert view["cache"]["redis_url"] == f"redis://user:{MASK}@redis:6379/0"
    assert view["admin"]["token"] == MASK
    assert view["listen"]["port"] == 4141
