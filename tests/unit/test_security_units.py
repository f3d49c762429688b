"""Units behind the security properties: the admin guard compares with hmac.compare_digest,
the passthrough path rules, the refusal log's interval, credentials refused in provider URLs,
header text that is not UTF-8."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from pydantic import ValidationError

from sidecar.admin import guard
from sidecar.app import create_app
from sidecar.config import Settings
from sidecar.deps import DEPS, Deps
from sidecar.endpoints import MODEL_ENDPOINTS
from sidecar.errors import InvalidRequest, NotFound
from sidecar.handler import header_text
from sidecar.telemetry.metrics import Metrics
from sidecar.telemetry.refusals import AuthRefusals
from sidecar.upstream import paths


async def test_the_admin_guard_compares_in_constant_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every token the guard checks (header, cookie, the page's `?token=` login) goes through
    hmac.compare_digest, as bytes, against the configured token; nothing else decides."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(guard.hmac, "compare_digest", recording)
    app: Any = {DEPS: Deps.build(Settings())}

    async def ok(request: Any) -> Any:
        return "served"

    rule = guard.AdminGuard.of(Settings.model_validate({"admin": {"token": "s3cret"}}))
    handler = rule.wrap(ok, "page")
    for path, headers, served in (
            ("/sidecar/ui", {"Authorization": "Bearer s3cret"}, True),
            ("/sidecar/ui", {"Authorization": "Bearer nope"}, False),
            ("/sidecar/ui", {"Cookie": "llm_sidecar_admin=s3cret"}, True),
            ("/sidecar/ui?token=nope", {}, False)):
        request = make_mocked_request("GET", path, headers=headers, app=app)
        answer = await handler(request)
        assert (answer == "served") is served, headers
    assert calls == [(b"s3cret", b"s3cret"), (b"nope", b"s3cret"), (b"s3cret", b"s3cret"),
                     (b"nope", b"s3cret")]


@pytest.mark.parametrize("path", ["/../x", "/%2e%2e/x", "/a/../../x", "/%2E%2e/x", "/..",
                                  "/%252e%252e/x", "/..\\x", "/a/%2e%2e/%2e%2e/sidecar",
                                  "/..;/x", "/.;/..;x/y"])
def test_paths_that_climb_out_of_v1_are_not_found(path: str) -> None:
    """A passthrough path whose dot segments (plain, encoded, double-encoded) climb above /v1
    is a 404, whatever the method."""
    assert isinstance(paths.refusal("GET", path), NotFound)


@pytest.mark.parametrize("path", ["/x/../chat/completions", "/./embeddings",
                                  "/chat%2Fcompletions", "//chat/completions",
                                  "/chat/completions/", "/%63hat/completions?x=1",
                                  "/responses%252F", "/x/..%2Fcompletions"])
def test_model_endpoints_in_disguise_are_refused(path: str) -> None:
    """A POST whose path is a model endpoint once decoded and resolved is a 400 naming the
    exact path (it would skip redaction, budgets and the cache); other methods pass."""
    error = paths.refusal("POST", path)
    assert isinstance(error, InvalidRequest)
    assert paths.refusal("GET", path) is None


@pytest.mark.parametrize("path", ["/models", "/files/f-1/content?x=1", "/a/./b", "/a/../b",
                                  "/v1.2/x", "/batches/b%20c", "/chat/completions/cmpl-1"])
def test_ordinary_passthrough_paths_pass(path: str) -> None:
    """Paths that stay under /v1 and are no model endpoint are forwarded."""
    assert paths.refusal("POST", path) is None


def test_the_path_rules_know_every_model_endpoint() -> None:
    """upstream/paths.py refuses exactly the model endpoints the app routes through the
    pipeline (one list now: the app's POST routes come from it)."""
    app = create_app(Settings())
    posted = {resource.canonical.removeprefix("/v1/") for resource in app.router.resources()
              if resource.canonical.startswith("/v1/") and "{" not in resource.canonical
              and any(route.method == "POST" for route in resource)}
    assert posted == set(MODEL_ENDPOINTS)


def test_refusals_log_once_per_interval() -> None:
    """The first refusal schedules the interval's end; those inside it are only counted; the
    end logs them (and schedules the next end); nothing is held once it is logged."""
    scheduled: list[tuple[float, Callable[[], None]]] = []

    class Handle:
        def cancel(self) -> None:
            pass

    def later(delay: float, fn: Callable[[], None]) -> Any:
        scheduled.append((delay, fn))
        return Handle()

    metrics = Metrics()
    refusals = AuthRefusals(metrics, interval_s=60, later=later)
    for _ in range(5):
        refusals.refused("proxy", "invalid")
    assert [d for d, _ in scheduled] == [60]
    scheduled[0][1]()
    assert [d for d, _ in scheduled] == [60, 60]
    scheduled[1][1]()
    assert len(scheduled) == 2  # nothing held: no new interval
    text = metrics.exposition().decode()
    assert 'llm_sidecar_auth_failures_total{reason="invalid",scope="proxy"} 5.0' in text


@pytest.mark.parametrize("key", ["upstream.url", "provider.base_url"])
def test_credentials_in_a_provider_url_are_refused(key: str) -> None:
    """`user:pass@` in a provider's URL is a configuration error naming the key (aiohttp
    cannot send it with an Authorization header: every request was a 500)."""
    url = "https://user:pw@gateway.example/v1"
    raw: dict[str, Any] = ({"upstream": {"url": url}} if key == "upstream.url" else
                           {"providers": [{"name": "p", "base_url": url}]})
    with pytest.raises(ValidationError, match="must not contain credentials"):
        Settings.model_validate(raw)


def test_header_text_replaces_what_is_not_utf8() -> None:
    """Header bytes that are not UTF-8 (lone surrogates after aiohttp's decoding) become
    U+FFFD; valid text is returned as it is."""
    assert header_text("caf\udcc3\udca9") == "café"
    assert header_text("\udcff user") == "\ufffd user"
    assert header_text("plain") == "plain"
