"""GET /sidecar/openapi.json: an OpenAPI 3.1 description of the sidecar's own routes.

One description of every route any configuration can register (probes, admin routes, the
/v1 model endpoints and the passthrough); each listener serves the part of it that is
registered on it (no /v1 on a separate admin listener, no /metrics without Prometheus, no
inspector without admin.ui). tests/e2e/test_openapi.py keeps it in step with the code: every
registered route is described, every described one is registered, and schemathesis checks the
answers against it. The /v1 routes are described at the level the sidecar guarantees: an
OpenAI-compatible JSON object with a `model` in, the provider's answer or an OpenAI-shaped
error out (the error codes of INTERFACE.md §3).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from sidecar import __version__
from sidecar.endpoints import ENDPOINTS

JSON = "application/json"
_ERROR_CODES = {  # status -> the codes the sidecar itself answers it with (INTERFACE.md §3)
    400: ["invalid_json", "invalid_request", "pii_detected", "no_provider_available"],
    401: ["invalid_api_key"], 402: ["budget_exceeded"], 403: ["model_not_allowed"],
    404: ["not_found"], 413: ["request_too_large"], 429: ["rate_limit_exceeded"],
    500: ["internal_error"], 502: ["upstream_unavailable"],
    503: ["ledger_unavailable", "cache_unavailable"], 504: ["upstream_timeout", "cache_miss"],
}
ERROR = {
    "type": "object", "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["message", "type", "code"],
        "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                       "code": {"type": ["string", "null"]}, "param": {"type": ["string", "null"]},
                       "metadata": {"type": "object"}}}}}
ANTHROPIC_ERROR = {  # the same errors on Anthropic's wire (/v1/messages: errors.py)
    "type": "object", "required": ["type", "error"],
    "properties": {"type": {"const": "error"}, "error": {
        "type": "object", "required": ["type", "message"],
        "properties": {"type": {"type": "string"}, "message": {"type": "string"},
                       "details": {"type": "object"}}}}}
OBJECT: dict[str, Any] = {"type": "object"}
ANY: dict[str, Any] = {}


def _error(status: int, what: str, schema: str = "Error") -> dict[str, Any]:
    codes = ", ".join(f"`{code}`" for code in _ERROR_CODES.get(status, []))
    return {"description": f"{what}{' (' + codes + ')' if codes else ''}",
            "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _ok(schema: dict[str, Any], what: str = "OK", media: str = JSON) -> dict[str, Any]:
    return {"description": what, "content": {media: {"schema": schema}}}


def _object(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


_RELOADED = _object(applied={"type": "boolean"}, version={"type": "integer"},
                    changed={"type": "array", "items": {"type": "string"}},
                    restart_required={"type": "array", "items": {"type": "string"}},
                    error={"type": ["string", "null"]}, ms={"type": "number"})
_ARRAY_OF_OBJECTS = {"type": "array", "items": OBJECT}
_ADMIN_ERRORS = {"401": _error(401, "no or a wrong admin token"),
                 "403": {"description": "admin.token is not set and this listener is not "
                                        "loopback (`admin_token_required`)",
                         "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}}
_PROXY_ERRORS = {str(s): _error(s, "refused or failed by the sidecar")
                 for s in (400, 401, 402, 403, 404, 413, 429, 500, 502, 503, 504)}
_ANTHROPIC_PROXY_ERRORS = {
    str(s): _error(s, "refused or failed by the sidecar, in Anthropic's shape",
                   "AnthropicError")
    for s in (400, 401, 402, 403, 404, 413, 429, 500, 502, 503, 504)}


def _admin(summary: str, ok: dict[str, Any], *, parameters: list[dict[str, Any]] | None = None,
           errors: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"summary": summary, "security": [{"adminToken": []}, {}],
            "parameters": parameters or [],
            "responses": {"200": ok, **_ADMIN_ERRORS, **(errors or {})}}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


_MODEL_REQUEST = {"type": "object", "required": ["model"],
                  "properties": {"model": {"type": "string", "minLength": 1},
                                 "stream": {"type": "boolean"}},
                  "additionalProperties": True}
_PASSTHROUGH = {
    "summary": "Any other /v1 path, any method: forwarded to the first provider as it came, "
               "bodies streamed both ways.",
    "parameters": [_path("path")],
    "responses": {"default": {"description": "the provider's answer, as it sent it"},
                  "400": _error(400, "a model endpoint spelled another way"),
                  "401": _error(401, "auth.required and no known local key"),
                  "404": _error(404, "a path that leaves /v1"),
                  "502": _error(502, "the provider could not be reached"),
                  "504": _error(504, "the provider did not answer in time")}}


def _paths() -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = {
        "/healthz": {"get": {"summary": "Liveness: the process serves.", "responses": {
            "200": _ok(_object(status={"const": "ok"}))}}},
        "/readyz": {"get": {"summary": "Readiness: upstream pool open, ledger usable, not "
                                       "draining.", "responses": {
            "200": _ok(_object(status={"const": "ready"})),
            "503": _ok(_object(status={"const": "unavailable"},
                               reasons={"type": "array", "items": {"type": "string"}}),
                       "not ready, with the reasons")}}},
        "/metrics": {"get": _admin("Prometheus text exposition.",
                                   _ok({"type": "string"}, media="text/plain"))},
        "/sidecar/config": {"get": _admin(
            "The effective configuration, every secret as ***, the stage list and the "
            "configuration's version.",
            _ok(_object(config=OBJECT, stages={"type": "array", "items": {"type": "string"}},
                        version={"type": "integer"}, loaded_at={"type": "number"},
                        last_error={"type": ["string", "null"]},
                        restart_required={"type": "array", "items": {"type": "string"}},
                        reload={"type": "boolean"})))},
        "/sidecar/reload": {"post": _admin(
            "Read the configuration file again and apply it without a restart.",
            _ok(_RELOADED),
            errors={"409": _ok(_RELOADED, "started without a file to read again"),
                    "422": _ok(_RELOADED, "the file is invalid: the running configuration "
                                          "keeps serving")})},
        "/sidecar/providers": {"get": _admin(
            "Each provider's health, breaker and averages; the retry policy.",
            _ok(_object(providers=_ARRAY_OF_OBJECTS, retry=OBJECT)))},
        "/sidecar/cache": {"delete": _admin(
            "Purge the cache, or the entries of the models matching `model`.",
            _ok(_object(deleted={"type": "integer", "minimum": 0})),
            parameters=[_query("model", {"type": "string"})],
            errors={"400": _error(400, "an invalid glob"),
                    "503": _error(503, "the Redis cache cannot be reached")})},
        "/sidecar/privacy": {"get": _admin("The effective privacy policy.",
                                           _ok(_object(redact=OBJECT, zdr={"type": "boolean"})))},
        "/sidecar/usage": {"get": _admin(
            "Spend and tokens from the ledger, by window and dimension.",
            _ok(_object(window={"type": "string"}, rows=_ARRAY_OF_OBJECTS)),
            parameters=[_query("window", {"type": "string"}), _query("by", {"type": "string"})],
            errors={"400": _error(400, "an unknown window or dimension"),
                    "404": _error(404, "spend is off"),
                    "503": _error(503, "the ledger cannot be read")})},
        "/sidecar/budgets": {"get": _admin(
            "Each budget's limit, spent, remaining and reset time.",
            _ok(_object(budgets=_ARRAY_OF_OBJECTS)),
            errors={"404": _error(404, "spend is off"),
                    "503": _error(503, "the ledger cannot be read")})},
        "/sidecar/openapi.json": {"get": _admin("This description.", _ok(_object(
            openapi={"type": "string"}, paths=OBJECT)))},
        "/sidecar/ui": {"get": _admin(
            "The request inspector page (`?token=` once sets a cookie and redirects).",
            _ok({"type": "string"}, media="text/html"),
            parameters=[_query("token", {"type": "string"})],
            errors={"303": {"description": "the token was right: cookie set, redirect"}})},
        "/sidecar/ui/{asset}": {"get": _admin(
            "The page's script and style sheet.", {"description": "the file"},
            parameters=[_path("asset")], errors={"404": _error(404, "no such asset")})},
        "/sidecar/events": {"get": _admin(
            "Server-sent events: finished requests (metadata), budgets.",
            _ok({"type": "string"}, media="text/event-stream"),
            parameters=[_query("after", {"type": "string"})])},
        "/sidecar/requests": {"get": _admin(
            "Recent requests, newest last.",
            _ok(_object(requests=_ARRAY_OF_OBJECTS, skipped={"type": "integer"},
                        last={"type": "integer"})),
            parameters=[_query("after", {"type": "string"}), _query("limit", {"type": "string"})])},
        "/sidecar/requests/{request_id}": {"get": _admin(
            "One request, with prompt and completion when captured.", _ok(OBJECT),
            parameters=[_path("request_id")],
            errors={"404": _error(404, "not in the inspector's memory")})},
        "/sidecar/stats": {"get": _admin("Latency percentiles and error rate by model.",
                                         _ok(_object(window={"type": "string"},
                                                     models=_ARRAY_OF_OBJECTS)))},
        "/v1/{path}": dict.fromkeys(("get", "post", "put", "patch", "delete"), _PASSTHROUGH),
    }
    for endpoint, row in ENDPOINTS.items():
        anthropic = row.wire == "anthropic"
        schema: dict[str, Any] = _MODEL_REQUEST if row.default_model is None else {
            **_MODEL_REQUEST, "required": []}
        media = JSON
        if row.body == "multipart":  # text fields are strings; files are parts of their own
            media = "multipart/form-data"
            schema = {**schema, "properties": {"model": {"type": "string", "minLength": 1}}}
        paths[f"/v1/{endpoint}"] = {"post": {
            "summary": f"{'Anthropic' if anthropic else 'OpenAI'}'s /{endpoint} through the "
                       "pipeline (auth, privacy, routing, spend, cache, telemetry).",
            "requestBody": {"required": True, "content": {media: {"schema": schema}}},
            "responses": {"200": {"description": "the provider's answer: a JSON object, or an "
                                                 "event stream when `stream` is true",
                                  "content": {JSON: {"schema": OBJECT},
                                              "text/event-stream": {"schema": ANY}}},
                          "default": {"description": "an error the provider answered, passed "
                                                     "through as it came"},
                          **(_ANTHROPIC_PROXY_ERRORS if anthropic else _PROXY_ERRORS)}}}
    return paths


def registered(app: web.Application) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every route of `app` but the catch-all 404."""
    out = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path == "/{tail}" or route.method == "HEAD":
            continue
        path = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path).replace("{tail}", "{path}")
        methods = ("get", "post", "put", "patch", "delete") if route.method == "*" else (
            route.method.lower(),)
        out |= {(method, path) for method in methods}
    return out


def describe(app: web.Application) -> dict[str, Any]:
    """The description of the routes registered on `app`."""
    present = registered(app)
    paths = {}
    for path, operations in _paths().items():
        kept = {m: op for m, op in operations.items() if (m, path) in present}
        if kept:
            paths[path] = kept
    return {
        "openapi": "3.1.0",
        "info": {"title": "llm-sidecar", "version": __version__,
                 "description": "The sidecar's own routes. Admin routes need "
                                "`Authorization: Bearer <admin.token>` when a token is set; "
                                "without one they are served on a loopback listener only "
                                "(README, Security)."},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR, "AnthropicError": ANTHROPIC_ERROR},
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}}},
    }


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(describe(request.app))
