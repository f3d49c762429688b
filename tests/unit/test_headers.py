"""Header hygiene between client and upstream."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from sidecar.headers import client_response_headers, upstream_request_headers


def proxy(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


CLIENT = proxy(
    ("Host", "127.0.0.1:4141"), ("Connection", "keep-alive, X-Hop"), ("X-Hop", "1"),
    ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Proxy-Authorization", "Basic x"),
    ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"), ("Expect", "100-continue"),
    ("Authorization", "Bearer client"), ("Content-Type", "application/json"),
    ("Content-Length", "10"), ("Content-Encoding", "gzip"), ("Accept-Encoding", "br"),
    ("traceparent", "00-abc-def-01"), ("x-sidecar-user", "u1"), ("X-Sidecar-Tags", "a"),
    ("X-Custom", "1"), ("X-Custom", "2"),
)


def test_hop_by_hop_and_host_are_dropped() -> None:
    """Hop-by-hop headers, those named by Connection, Host and Expect never go upstream."""
    out = upstream_request_headers(CLIENT, extra=(), decoded_body=False, keep_client_auth=True)
    for name in ("Host", "Connection", "X-Hop", "Keep-Alive", "TE", "Proxy-Authorization",
                 "Transfer-Encoding", "Upgrade", "Expect"):
        assert name not in out, name
    assert out.getall("X-Custom") == ["1", "2"]
    assert out["traceparent"] == "00-abc-def-01"


def test_sidecar_control_headers_stay_local() -> None:
    """x-sidecar-* headers are for the sidecar and never leak upstream."""
    out = upstream_request_headers(CLIENT, extra=(), decoded_body=False, keep_client_auth=True)
    assert not [name for name in out if name.lower().startswith("x-sidecar-")]


def test_authorization_is_replaced_by_the_provider_credentials() -> None:
    """A provider's own Authorization (in `extra`) replaces the client's, never joins it."""
    out = upstream_request_headers(CLIENT, extra=(("Authorization", "Bearer sk-real"),),
                                   decoded_body=False, keep_client_auth=False)
    assert out.getall("Authorization") == ["Bearer sk-real"]


def test_authorization_passes_through_without_a_key() -> None:
    """Without an upstream key the client's Authorization goes upstream as sent."""
    out = upstream_request_headers(CLIENT, extra=(), decoded_body=False, keep_client_auth=True)
    assert out["Authorization"] == "Bearer client"


def test_local_token_never_goes_upstream() -> None:
    """A local auth token is dropped even when there is no upstream key to replace it."""
    out = upstream_request_headers(CLIENT, extra=(), decoded_body=False,
                                   keep_client_auth=False)
    assert "Authorization" not in out


def test_extra_headers_are_added() -> None:
    """Configured upstream headers (HTTP-Referer, X-Title) are set on every request."""
    out = upstream_request_headers(CLIENT, decoded_body=False,
                                   extra=(("HTTP-Referer", "https://x"), ("X-Title", "app")),
                                   keep_client_auth=True)
    assert (out["HTTP-Referer"], out["X-Title"]) == ("https://x", "app")


def test_encoding_headers_kept_for_passthrough_dropped_for_decoded_bodies() -> None:
    """Passthrough keeps length and encodings; a decoded, re-sent body drops them."""
    raw = upstream_request_headers(CLIENT, extra=(), decoded_body=False, keep_client_auth=True)
    assert (raw["Content-Length"], raw["Content-Encoding"], raw["Accept-Encoding"]) == (
        "10", "gzip", "br")
    decoded = upstream_request_headers(CLIENT, extra=(), decoded_body=True, keep_client_auth=True)
    for name in ("Content-Length", "Content-Encoding", "Accept-Encoding"):
        assert name not in decoded


def test_response_headers() -> None:
    """Upstream hop-by-hop headers are dropped; end-to-end ones, Set-Cookie included, kept."""
    upstream = proxy(("Connection", "close, X-Up-Hop"), ("X-Up-Hop", "1"),
                     ("Keep-Alive", "timeout=5"), ("Transfer-Encoding", "chunked"),
                     ("Proxy-Authenticate", "Basic"), ("Content-Encoding", "gzip"),
                     ("Content-Length", "5"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                     ("X-Request-Id", "up-1"))
    out = client_response_headers(upstream, decoded_body=False)
    assert set(out) == {"Content-Encoding", "Content-Length", "Set-Cookie", "X-Request-Id"}
    assert out.getall("Set-Cookie") == ["a=1", "b=2"]
    decoded = client_response_headers(upstream, decoded_body=True)
    assert "Content-Encoding" not in decoded and "Content-Length" not in decoded
