"""The AdmissionReview v1 the API server sends, read strictly, and the one it gets back.

Only what the injector needs is read: the request's uid (echoed in the response, or the API
server drops the answer), what is admitted (kind, operation, sub-resource), the namespace and
the object. Anything that is not an AdmissionReview v1 request is a `ReviewError`, which the
server answers with a 400 naming the field: a webhook misconfigured to send something else, or
a client that is not an API server, gets told what is wrong instead of a 500.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal

import orjson

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"

JsonPatch = list[dict[str, Any]]


class ReviewError(ValueError):
    """The body is not an AdmissionReview v1 request; the message names what is wrong."""


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    uid: str
    group: str  # request.kind: what is admitted, e.g. ("", "v1", "Pod")
    version: str
    kind: str
    operation: str  # CREATE, UPDATE, DELETE, CONNECT
    sub_resource: str  # "" for the object itself
    namespace: str
    dry_run: bool
    object: dict[str, Any] | None

    @property
    def is_pod_create(self) -> bool:
        return (self.group, self.kind, self.operation, self.sub_resource) == (
            "", "Pod", "CREATE", "")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the webhook answers: allowed with an optional patch, or denied with a message."""

    allowed: bool
    patch: JsonPatch | None = None
    warnings: tuple[str, ...] = ()
    message: str = ""  # shown to the user when denied
    code: int = 200  # the HTTP-like status code of a denial (400: the pod's fault, 500: ours)
    outcome: Literal["injected", "skipped", "denied", "error"] = "skipped"
    reason: str = ""  # one phrase for the log line


def parse_review(body: bytes) -> AdmissionRequest:
    """An AdmissionRequest from the raw body, or a ReviewError naming the first problem."""
    try:
        review = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ReviewError(f"the body is not JSON: {exc}") from None
    if not isinstance(review, dict):
        raise ReviewError(f"the body must be a JSON object (an AdmissionReview), "
                          f"not {_json_type(review)}")
    if review.get("kind") != KIND or review.get("apiVersion") != API_VERSION:
        raise ReviewError(f"expected kind {KIND} with apiVersion {API_VERSION}, got kind "
                          f"{review.get('kind')!r} with apiVersion {review.get('apiVersion')!r} "
                          f"(the webhook configuration must list admissionReviewVersions: [v1])")
    request = _mapping(review, "request", "")
    uid = _string(request, "uid", "request.")
    if not uid:
        raise ReviewError("request.uid is empty")
    kind = _mapping(request, "kind", "request.")
    operation = _string(request, "operation", "request.")
    obj = request.get("object")
    if obj is not None and not isinstance(obj, dict):
        raise ReviewError(f"request.object must be an object, not {_json_type(obj)}")
    if operation == "CREATE" and obj is None:
        raise ReviewError("request.object is missing from a CREATE request")
    dry_run = request.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise ReviewError(f"request.dryRun must be a boolean, not {_json_type(dry_run)}")
    return AdmissionRequest(
        uid=uid, group=_string(kind, "group", "request.kind.", optional=True),
        version=_string(kind, "version", "request.kind."),
        kind=_string(kind, "kind", "request.kind."), operation=operation,
        sub_resource=_string(request, "subResource", "request.", optional=True),
        namespace=_string(request, "namespace", "request.", optional=True),
        dry_run=dry_run, object=obj)


def review_response(uid: str, verdict: Verdict) -> dict[str, Any]:
    """The AdmissionReview v1 answer to request `uid`."""
    response: dict[str, Any] = {"uid": uid, "allowed": verdict.allowed}
    if verdict.patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(orjson.dumps(verdict.patch)).decode()
    if verdict.warnings:
        response["warnings"] = list(verdict.warnings)
    if not verdict.allowed:
        response["status"] = {"code": verdict.code, "message": verdict.message}
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}


def _mapping(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise ReviewError(f"{where}{key} must be an object, "
                          f"{'but it is missing' if value is None else 'not ' + _json_type(value)}")
    return value


def _string(parent: dict[str, Any], key: str, where: str, *, optional: bool = False) -> str:
    value = parent.get(key)
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise ReviewError(f"{where}{key} must be a string, "
                          f"{'but it is missing' if value is None else 'not ' + _json_type(value)}")
    return value


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
