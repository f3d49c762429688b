"""Which egress proxy a provider's requests go through, decided once at start-up.

A provider's own `proxy` setting wins. Otherwise `HTTPS_PROXY` / `HTTP_PROXY` (by the base URL's
scheme, upper or lower case) unless `NO_PROXY` names the host, with curl's rules:
comma-separated names, each matching the host and its subdomains (a leading dot is optional),
`host:port` to match one port only, `*` for every host. Loopback
hosts never use an environment proxy (Go's net/http rule): a sidecar's upstream on localhost is
not behind the corporate proxy.

Resolved once per provider, not per request: aiohttp's `trust_env` would read the environment
and match NO_PROXY on every request. Only http:// and https:// proxies are supported (aiohttp's
client); another scheme in the environment (`socks5://`) is ignored with a warning.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import structlog

_log = structlog.get_logger("sidecar.egress")


def environment_proxies(environ: Mapping[str, str]) -> dict[str, str]:
    """{"http": url, "https": url, "no": hosts} from an environment, as urllib reads them."""
    proxies: dict[str, str] = {}
    for name, value in environ.items():  # lower case wins over upper case, as in urllib
        lowered = name.lower()
        if value and lowered.endswith("_proxy"):
            scheme = lowered[:-6]
            if name.islower() or scheme not in proxies:
                proxies[scheme] = value
    return proxies


def egress_proxy(base_url: str, configured: str | None, proxies: Mapping[str, str]
                 ) -> str | None:
    """The proxy URL for a provider at `base_url`, or None to connect directly."""
    if configured:
        return configured
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    proxy = proxies.get(parts.scheme)
    if not proxy or _is_loopback(host):
        return None
    if bypassed(host, parts.port or (443 if parts.scheme == "https" else 80),
                proxies.get("no", "")):
        return None
    if not proxy.startswith(("http://", "https://")):
        _log.warning("egress_proxy_ignored", reason="only http:// and https:// proxies are "
                     "supported", proxy=redact(proxy))
        return None
    return proxy


def redact(url: str | None) -> str | None:
    """A proxy URL without its password, for logs and /sidecar/providers."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Does NO_PROXY (its value) exempt this host and port?"""
    host = host.lower().rstrip(".")
    for entry in no_proxy.replace(" ", "").lower().split(","):
        if entry == "*":
            return True
        name, colon, wanted = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if colon and wanted != str(port):
            continue
        name = name.lstrip(".").rstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
