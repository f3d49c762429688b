"""The webhook's HTTPS server: AdmissionReview in, AdmissionReview out.

The API server calls webhooks over TLS only, verifying the serving certificate against the
webhook configuration's caBundle. The certificate and key come from files (a mounted Secret,
written by cert-manager or Helm) and are re-read when they change: cert-manager renews the
certificate long before it expires, and a process that kept the old one would start failing
every call once it did (with failurePolicy Ignore: pods silently created without the sidecar).

Routes: POST /inject and POST /inject/namespace (admission.py says why there are two),
GET /healthz and /readyz for the kubelet (over HTTPS too: one port, one certificate).
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from aiohttp import web

from sidecar.errors import (
    JSON_CONTENT_TYPE,
    InvalidRequest,
    RequestTooLarge,
    SidecarError,
    render,
)
from sidecar.inject.admission import Injector, Mode
from sidecar.inject.review import ReviewError, parse_review, review_response

log = structlog.get_logger("sidecar.inject")
# An AdmissionReview holds the object (and oldObject on updates); the API server stores objects
# of up to 1.5 MiB (etcd's request limit), so 4 MiB never cuts off a real pod.
MAX_REVIEW_BYTES = 4 * 1024 * 1024
INJECTOR: web.AppKey[Injector] = web.AppKey("injector", Injector)


class ServingCertificate:
    """The server's TLS context, with the certificate re-loaded when its files change.

    Kubelet updates a mounted Secret by swapping a symlink, so both files change at once. Each
    new pair is loaded into a fresh context and handed to new handshakes by the listening
    context's SNI callback (called for every ClientHello, with or without a server name):
    loading into the live context instead would leave it half changed when the pair does not
    match (OpenSSL takes the certificate before it checks the key). A pair that fails to load
    keeps the old one serving and is tried again at the next check; open connections keep
    theirs."""

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self.loaded = ""  # digest of the pair in use
        self.problem = ""  # why the last load failed
        self.current: ssl.SSLContext | None = None
        if not self.check() or self.current is None:
            raise ValueError(f"cannot load the serving certificate {cert_file} with key "
                             f"{key_file}: {self.problem}")
        self.context: ssl.SSLContext = self.current  # the one the listener holds
        self.context.sni_callback = self._select

    def _select(self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                context: ssl.SSLContext) -> None:
        if self.current is not None and self.current is not context:
            connection.context = self.current

    def check(self) -> bool:
        """Load the files if they changed; True when the loaded pair is the current one."""
        try:
            digest = self._digest()
            if digest == self.loaded:
                return True
            fresh = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            fresh.minimum_version = ssl.TLSVersion.TLSv1_2
            fresh.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            self.problem = str(exc)
            if self.loaded:
                log.error("certificate_reload_failed", cert_file=str(self.cert_file),
                          error=self.problem, note="still serving the previous certificate")
            return False
        if self.loaded:
            log.info("certificate_reloaded", cert_file=str(self.cert_file))
        self.current, self.loaded, self.problem = fresh, digest, ""
        return True

    def _digest(self) -> str:
        return hashlib.sha256(self.cert_file.read_bytes() + b"\0" +
                              self.key_file.read_bytes()).hexdigest()

    async def watch(self, interval_s: float) -> None:
        """Check every `interval_s` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            self.check()


def create_inject_app(injector: Injector) -> web.Application:
    app = web.Application(client_max_size=MAX_REVIEW_BYTES)
    app[INJECTOR] = injector
    app.router.add_post("/inject", _review_handler("pod"))
    app.router.add_post("/inject/namespace", _review_handler("namespace"))
    app.router.add_get("/healthz", _ok)
    app.router.add_get("/readyz", _ok)
    return app


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def _review_handler(mode: Mode) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def review(request: web.Request) -> web.StreamResponse:
        began = time.monotonic()
        if request.content_type != JSON_CONTENT_TYPE:
            return _refuse(InvalidRequest(f"the body must be {JSON_CONTENT_TYPE} (an "
                                          f"AdmissionReview), not {request.content_type}"))
        try:
            admission = parse_review(await request.read())
            verdict = request.app[INJECTOR].review(admission, mode)
        except web.HTTPRequestEntityTooLarge:
            return _refuse(RequestTooLarge(f"an AdmissionReview is at most {MAX_REVIEW_BYTES} "
                                           f"bytes"))
        except ReviewError as exc:
            return _refuse(InvalidRequest(f"not an AdmissionReview v1 request: {exc}"))
        log.info("admission", uid=admission.uid, namespace=admission.namespace,
                 pod=_pod_name(admission.object), mode=mode, outcome=verdict.outcome,
                 reason=verdict.reason, allowed=verdict.allowed, dry_run=admission.dry_run,
                 warnings=list(verdict.warnings) or None,
                 ms=round((time.monotonic() - began) * 1000, 2))
        return web.json_response(review_response(admission.uid, verdict))
    return review


def _refuse(error: SidecarError) -> web.Response:
    log.warning("bad_admission_review", status=error.status, error=error.message)
    return web.Response(body=render(error), status=error.status,
                        content_type=JSON_CONTENT_TYPE)


def _pod_name(obj: dict[str, object] | None) -> str:
    metadata = (obj or {}).get("metadata")
    if not isinstance(metadata, dict):
        return ""
    return str(metadata.get("name") or (f"{metadata['generateName']}*"
                                        if metadata.get("generateName") else ""))
