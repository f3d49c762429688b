"""Egress proxy resolution: the provider setting, the environment, NO_PROXY and loopback."""

from __future__ import annotations

import pytest

from sidecar.upstream.egress import egress_proxy, environment_proxies, redact

P = "http://proxy.corp:3128"


@pytest.mark.parametrize(("url", "configured", "env", "expected"), [
    ("https://api.x.com/v1", "http://own:1", {"HTTPS_PROXY": P}, "http://own:1"),
    ("https://api.x.com/v1", None, {"HTTPS_PROXY": P}, P),
    ("https://api.x.com/v1", None, {"HTTP_PROXY": P}, None),  # scheme decides
    ("http://api.x.com/v1", None, {"HTTP_PROXY": P}, P),
    ("https://api.x.com/v1", None, {"https_proxy": P, "HTTPS_PROXY": "http://u:1"}, P),
    ("https://api.x.com/v1", None, {"HTTPS_PROXY": P, "NO_PROXY": "x.com"}, None),
    ("https://api.x.com/v1", None, {"HTTPS_PROXY": P, "NO_PROXY": ".x.com"}, None),
    ("https://api.x.com/v1", None, {"HTTPS_PROXY": P, "NO_PROXY": "a.com, api.x.com"}, None),
    ("https://api.x.com/v1", None, {"HTTPS_PROXY": P, "NO_PROXY": "notx.com"}, P),
    ("https://api.x.com/v1", None, {"HTTPS_PROXY": P, "NO_PROXY": "api.x.com:8443"}, P),
    ("https://api.x.com:8443/v1", None, {"HTTPS_PROXY": P, "NO_PROXY": "api.x.com:8443"},
     None),
    ("https://api.x.com/v1", None, {"HTTPS_PROXY": P, "no_proxy": "*"}, None),
    ("http://127.0.0.1:8000/v1", None, {"HTTP_PROXY": P}, None),  # loopback: direct
    ("http://localhost:8000/v1", None, {"HTTP_PROXY": P}, None),
    ("http://[::1]:8000/v1", None, {"HTTP_PROXY": P}, None),
    ("http://127.0.0.1:8000/v1", "http://own:1", {}, "http://own:1"),  # unless configured
    ("https://api.x.com/v1", None, {"HTTPS_PROXY": "socks5://s:1080"}, None),
])
def test_egress_proxy(url: str, configured: str | None, env: dict[str, str],
                      expected: str | None) -> None:
    """The provider's own proxy wins; else the scheme's env proxy unless exempted."""
    assert egress_proxy(url, configured, environment_proxies(env)) == expected


def test_redact_hides_the_password() -> None:
    """Proxy credentials never show in /sidecar/providers."""
    assert redact("http://me:s3cret@proxy:3128") == "http://me:***@proxy:3128"
    assert redact(P) == P
    assert redact(None) is None
