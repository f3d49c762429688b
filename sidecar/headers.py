"""Header hygiene between the client and the upstream, both ways (RFC 9110 §7.6.1).

Hop-by-hop headers (and any the `Connection` header names) belong to one connection and are
dropped. `Host` is the upstream's. The sidecar's own control headers (`x-sidecar-*`) are read
by stages and never leak upstream. Content-Encoding is left alone on passthrough paths (bytes
go through undecoded both ways); on model endpoints the sidecar decodes, so the encoding
headers of the decoded side are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "proxy-connection", "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})
# Request headers the upstream must not see: our own controls, and what the connection to the
# upstream sets for itself (aiohttp writes Host and, for bodies we re-send, Content-Length).
_NOT_FORWARDED = HOP_BY_HOP | {"host", "expect"}
_DECODED_BODY = frozenset({"content-length", "content-encoding", "accept-encoding"})


def _connection_tokens(headers: CIMultiDictProxy[str]) -> frozenset[str]:
    value = headers.get("Connection")
    if not value:
        return frozenset()
    return frozenset(token.strip().lower() for token in value.split(","))


def upstream_request_headers(
    client: CIMultiDictProxy[str],
    *,
    api_key: str | None,
    extra: Iterable[tuple[str, str]],
    decoded_body: bool,
    drop_client_auth: bool,
) -> CIMultiDict[str]:
    """Headers for the upstream request, built from the client's.

    `api_key` set: the client's Authorization is replaced (the app never needs the real key).
    `drop_client_auth`: the client's token was a local one; it must not travel upstream.
    `decoded_body`: the sidecar re-sends a body it decoded, so length and encoding are its own.
    """
    drop = _NOT_FORWARDED | _connection_tokens(client)
    if decoded_body:
        drop = drop | _DECODED_BODY
    if api_key is not None or drop_client_auth:
        drop = drop | {"authorization"}
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in client.items():
        lower = name.lower()
        if lower in drop or lower.startswith("x-sidecar-"):
            continue
        out.add(name, value)
    for name, value in extra:
        out[name] = value
    if api_key is not None:
        out["Authorization"] = f"Bearer {api_key}"
    return out


def client_response_headers(upstream: CIMultiDictProxy[str], *, decoded_body: bool
                            ) -> CIMultiDict[str]:
    """Headers for the client response, built from the upstream's."""
    drop = HOP_BY_HOP | _connection_tokens(upstream)
    if decoded_body:
        drop = drop | _DECODED_BODY
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream.items():
        if name.lower() not in drop:
            out.add(name, value)
    return out
