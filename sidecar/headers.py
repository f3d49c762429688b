"""Header hygiene between the client and the upstream, both ways (RFC 9110 §7.6.1).

Hop-by-hop headers (and any the `Connection` header names) belong to one connection and are
dropped. `Host` is the upstream's. The sidecar's own control headers (INTERFACE.md §3, "Headers
the sidecar reads") are read by stages and never leak upstream. Content-Encoding is left alone
on passthrough paths (bytes go through undecoded both ways); on model endpoints the sidecar
decodes, so the encoding headers of the decoded side are dropped. Credentials are the
provider's business: it sets its own auth header (providers/).

This runs twice per request, so it copies the headers in C (`copy()`) and deletes a fixed list
of names, instead of testing every header in Python (5 µs a request with SDK-sized headers).
"""

from __future__ import annotations

from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy

HOP_BY_HOP = (
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "proxy-connection", "te", "trailer", "trailers", "transfer-encoding", "upgrade",
)
# The request headers the sidecar reads; a stage that reads a new one adds it here.
SIDECAR_REQUEST_HEADERS = ("x-sidecar-user", "x-sidecar-tags", "x-sidecar-cache-ttl")
SERVER = "llm-sidecar"  # the Server header on every response: no versions advertised
REQUEST_ID_HEADER = "x-sidecar-request-id"  # on every response: relay, not_found, admin
PROVIDER_HEADER = "x-sidecar-provider"  # the provider whose answer the client got
ATTEMPTS_HEADER = "x-sidecar-attempts"  # upstream tries it took
COST_HEADER = "x-sidecar-cost-usd"  # spend: what a whole answer cost
REMAINING_HEADER = "x-sidecar-budget-remaining-usd"  # spend: the tightest budget's room left
# What the connection to the upstream sets for itself (aiohttp writes Host) or already handled.
_REQUEST_DROP = (*HOP_BY_HOP, *SIDECAR_REQUEST_HEADERS, "host", "expect")
_DECODED_BODY = ("content-length", "content-encoding", "accept-encoding")
_DROP = {  # (request side?, decoded body?) -> names to drop
    (True, False): _REQUEST_DROP,
    (True, True): (*_REQUEST_DROP, *_DECODED_BODY),
    (False, False): HOP_BY_HOP,
    (False, True): (*HOP_BY_HOP, *_DECODED_BODY),
}


def _without(headers: CIMultiDictProxy[str], names: tuple[str, ...]) -> CIMultiDict[str]:
    out = headers.copy()
    for name in names:
        if name in out:
            del out[name]
    listed = headers.get("Connection")
    if listed:  # headers the sender marked as hop-by-hop for this one connection
        for token in listed.split(","):
            out.popall(token.strip(), None)
    return out


def upstream_request_headers(
    client: CIMultiDictProxy[str],
    *,
    extra: Iterable[tuple[str, str]],
    decoded_body: bool,
    keep_client_auth: bool,
) -> CIMultiDict[str]:
    """Headers for the upstream request, built from the client's.

    `keep_client_auth`: the client's Authorization goes upstream as sent (no key configured,
    no local keys); otherwise it is dropped, with Anthropic's `x-api-key` (a local key may
    come in either), and the provider sets its own credentials.
    `decoded_body`: the sidecar re-sends a body it decoded, so length and encoding are its own.
    """
    out = _without(client, _DROP[True, decoded_body])
    if not keep_client_auth:
        out.popall("Authorization", None)
        out.popall("x-api-key", None)
    for name, value in extra:
        out[name] = value
    return out


def client_response_headers(upstream: CIMultiDictProxy[str], *, decoded_body: bool
                            ) -> CIMultiDict[str]:
    """Headers for the client response, built from the upstream's."""
    return _without(upstream, _DROP[False, decoded_body])


def sent_bytes(value: str) -> bytes:
    """The bytes a client sent in a header (or query) value, for comparing credentials: aiohttp
    decodes bytes that are not UTF-8 into lone surrogates, which a plain `encode()` refuses
    with an exception (a 500); `surrogateescape` gives the original bytes back."""
    return value.encode("utf-8", "surrogateescape")
