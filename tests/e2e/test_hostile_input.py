"""Hostile input against the real sidecar with every feature on (tests/fakes/stack.py), over
raw sockets: property-based bodies and headers (hypothesis), and path tricks aimed at the admin
routes or at a host that is not a provider. Every answer is a clean OpenAI-shaped 4xx or a
correct 200 from the sidecar, never a 500, a hang or a traceback; the process keeps serving;
the "evil" host records nothing; nothing is logged at error level.

Bounded and deterministic: `derandomize=True` (the examples are a function of the test) and no
example database, so CI runs the same cases every time; each property runs MAX_EXAMPLES.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.deps import DEPS
from tests.fakes.logs import captured_logs, json_lines
from tests.fakes.rawhttp import RawResponse, exchange, request
from tests.fakes.stack import ADMIN_TOKEN, BASE_PATH, KEYS, MAX_BODY, UPSTREAM_KEYS, Stack

MAX_EXAMPLES = 150
FUZZ = settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])
AUTH = ("Authorization", f"Bearer {KEYS['team-a']}")
ENDPOINTS = ("chat/completions", "completions", "embeddings", "responses")
SECRETS = (ADMIN_TOKEN, *UPSTREAM_KEYS.values(), "hdr-SENTINEL")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with captured_logs(level="info") as logs:
        running = Stack().start()
        running.logs = logs
        yield running
        running.stop()
    assert errors_in(logs) == []


@pytest.fixture(autouse=True)
def still_serving(stack: Stack) -> Iterator[None]:
    """After each test: the process answers a plain request, and the evil host saw nothing."""
    yield
    answer = post(stack, "chat/completions", orjson.dumps(
        {"model": "fake/a", "messages": [{"role": "user", "content": "still there?"}]}),
        headers=[AUTH, ("Cache-Control", "no-store")])
    assert answer.status == 200, answer.body
    assert stack.evil.requests == []
    assert errors_in(stack.logs) == []


def errors_in(logs: io.StringIO) -> list[dict[str, Any]]:
    """Error lines, but aiohttp's own for requests it could not parse (it answers them 400
    before any route: docs/security.md)."""
    return [line for line in json_lines(logs) if line["level"] in ("error", "critical")
            and "aiohttp.http_exceptions." not in line.get("exception", "")]


def post(stack: Stack, endpoint: str, body: bytes,
         headers: list[tuple[str, str]] | None = None) -> RawResponse:
    return exchange(stack.port, request("POST", f"/v1/{endpoint}",
                                        headers=[("Content-Type", "application/json"),
                                                 *(headers or [])], body=body))


def dumps(body: Any) -> bytes:
    """JSON as a client could send it (the standard library writes integers of any size)."""
    return json.dumps(body, ensure_ascii=False).encode()


def not_a_failure(answer: RawResponse) -> bool:
    """Below 500, or the one 5xx a client asks for: 504 cache_miss (Cache-Control:
    only-if-cached with nothing cached, INTERFACE.md §3)."""
    return answer.status < 500 or (answer.status == 504 and b'"code":"cache_miss"' in answer.body)


def assert_clean(answer: RawResponse, case: object) -> None:
    """A sidecar answer: no failure, never a traceback or a secret; errors OpenAI-shaped."""
    assert not_a_failure(answer), (case, answer.status, answer.body[:500])
    assert answer.all("Server") == ["llm-sidecar"], case
    assert answer.header("x-sidecar-request-id"), case
    assert b"Traceback" not in answer.body, case
    for secret in SECRETS:
        assert secret.encode() not in answer.raw_head + answer.body, (case, secret)
    if answer.status >= 400:
        error = answer.json()["error"]
        assert isinstance(error["message"], str) and error["message"], case
        assert isinstance(error["type"], str) and isinstance(error["code"], str), case


# -- bodies ---------------------------------------------------------------------------------

LEAVES = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
          | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
          | st.sampled_from(["", "fake/a", "fast", "<EMAIL_1>", "jane@example.com",
                             "4111 1111 1111 1111", "\u202e\x00\ufeff", "a" * 3000]))
JSON = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=10)
FIELDS = ("messages", "stream", "stream_options", "tools", "tool_choice", "functions",
          "max_tokens", "max_completion_tokens", "max_output_tokens", "temperature", "top_p",
          "n", "user", "response_format", "logprobs", "seed", "stop", "metadata", "models",
          "provider", "route", "input", "prompt", "suffix", "instructions", "encoding_format",
          "dimensions", "reasoning", "text", "previous_response_id")
MODELS = st.sampled_from(["fake/a", "other/b", "fast", "fake/a:floor", "x:nitro", "fake/*"])
BODIES = st.fixed_dictionaries({"model": MODELS | JSON}, optional=dict.fromkeys(FIELDS, JSON))


@FUZZ
@given(endpoint=st.sampled_from(ENDPOINTS), body=BODIES)
def test_bodies_with_every_known_field_of_any_type(stack: Stack, endpoint: str,
                                                   body: dict[str, Any]) -> None:
    """Any JSON value in any known field of any model endpoint: a 4xx or a 200."""
    assert_clean(post(stack, endpoint, dumps(body), [AUTH]), body)


TEXT_PART = st.fixed_dictionaries({"type": st.just("text"), "text": JSON})
PART = st.one_of(
    TEXT_PART,
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": JSON | st.fixed_dictionaries(
        {"url": st.sampled_from(["data:image/png;base64,iVBORw0KGgo=", "http://evil/x.png",
                                 "data:,", "file:///etc/passwd"]), "detail": JSON})}),
    st.fixed_dictionaries({"type": st.just("input_audio"), "input_audio": JSON}),
    st.fixed_dictionaries({"type": st.just("file"), "file": JSON}),
    st.fixed_dictionaries({"type": st.sampled_from(["refusal", "input_text", "output_text",
                                                    "reasoning", "??"]), "text": JSON,
                           "refusal": JSON}),
    JSON)
TOOL_CALL = st.fixed_dictionaries({"id": JSON, "type": st.just("function") | JSON,
                                   "function": st.fixed_dictionaries(
                                       {"name": JSON, "arguments": st.text(max_size=30) | JSON})
                                   | JSON})
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "developer", "user", "assistant", "tool", "function",
                              "", "x"]) | JSON},
    optional={"content": st.text(max_size=60) | st.lists(PART, max_size=3) | JSON,
              "tool_calls": st.lists(TOOL_CALL, max_size=2) | JSON, "tool_call_id": JSON,
              "name": JSON, "reasoning": JSON, "refusal": JSON})
TOOLS = st.lists(st.fixed_dictionaries({"type": st.just("function") | JSON, "function": JSON})
                 | JSON, max_size=3) | JSON


@FUZZ
@given(messages=st.lists(MESSAGE, max_size=4) | JSON, tools=TOOLS,
       stream=st.booleans() | JSON,
       stream_options=st.none() | st.fixed_dictionaries({}, optional={
           "include_usage": JSON, "include_obfuscation": JSON}) | JSON)
def test_messages_parts_tools_and_stream_options(stack: Stack, messages: Any, tools: Any,
                                                 stream: Any, stream_options: Any) -> None:
    """Odd `messages` (every role, content parts of every kind, tool calls of wrong shapes),
    `tools` and `stream_options`, streamed or not: a 4xx or a 200."""
    body = {"model": "fake/a", "messages": messages, "tools": tools, "stream": stream,
            "stream_options": stream_options}
    assert_clean(post(stack, "chat/completions", dumps(body), [AUTH]), body)


ROUTING = st.fixed_dictionaries({}, optional={
    "models": st.lists(MODELS | JSON, max_size=20) | JSON,
    "provider": st.fixed_dictionaries({}, optional={
        key: JSON | st.lists(st.sampled_from(["a", "b", "evil", ""]), max_size=3)
        for key in ("order", "only", "ignore", "allow_fallbacks", "sort", "max_price",
                    "data_collection", "zdr", "require_parameters", "quantizations")}) | JSON,
    "route": JSON})


@FUZZ
@given(routing=ROUTING, model=MODELS)
def test_routing_fields_of_wrong_shapes(stack: Stack, routing: dict[str, Any],
                                        model: str) -> None:
    """`models`, `provider.*` and `route` of any shape: a 400 naming the field, or a 200 from
    a configured provider (never the evil host)."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **routing}
    assert_clean(post(stack, "chat/completions", dumps(body), [AUTH]), body)


def _raw_bodies() -> st.SearchStrategy[bytes]:
    base = b'{"model":"fake/a","messages":[{"role":"user","content":"hi"}]'
    deep = st.integers(1, 1200).map(
        lambda n: base + b',"metadata":' + b"[" * n + b"]" * n + b"}")
    numbers = st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400",
                               b"1" + b"0" * 400, b"18446744073709551616", b"-0", b"1e-400",
                               b"0x10", b"01", b"1.", b".5", b"+1"]).map(
        lambda n: base + b',"max_tokens":' + n + b',"temperature":' + n + b"}")
    invalid_utf8 = st.binary(min_size=1, max_size=8).map(
        lambda junk: base[:-2] + b"\xff" + junk + b'"}]}')
    duplicates = st.lists(st.sampled_from([b'"model":"fake/a"', b'"model":5',
                                           b'"stream":true', b'"stream":"yes"',
                                           b'"messages":[]', b'"messages":{}']),
                          min_size=2, max_size=6).map(lambda kv: b"{" + b",".join(kv) + b"}")
    huge = st.integers(MAX_BODY - 64, MAX_BODY + 64).map(
        lambda n: base + b',"user":"' + b"x" * n + b'"}')
    escapes = st.sampled_from([b'"\\ud800"', b'"\\udfff"', b'"\\u0000"', b'"\\x41"',
                               b'"\\uD83D\\uDE00"', b'"a\nb"']).map(
        lambda s: base[:-2] + b',"name":' + s + b"}]}")
    other = st.sampled_from([b"", b"null", b"[]", b"[1]", b'"x"', b"{", b"}", b"\xef\xbb\xbf{}",
                             b"{}" * 3, b'{"model":null}', b'{"model":""}', b" " * 100,
                             b"\x00" * 10, b'{"model":"fake/a"}garbage'])
    return deep | numbers | invalid_utf8 | duplicates | huge | escapes | other | st.binary(
        max_size=200)


@FUZZ
@given(endpoint=st.sampled_from(ENDPOINTS), body=_raw_bodies())
def test_raw_bodies(stack: Stack, endpoint: str, body: bytes) -> None:
    """Invalid UTF-8, NaN/Infinity and huge numbers, duplicate keys, nesting 1 to 1,200 deep,
    bodies around listen.max_body_bytes, odd escapes, not-JSON: a 4xx or a 200."""
    assert_clean(post(stack, endpoint, body, [AUTH]), body[:200])


# -- headers --------------------------------------------------------------------------------

HEADER_NAMES = ("Authorization", "Cache-Control", "x-sidecar-user", "x-sidecar-tags",
                "x-sidecar-cache-ttl", "traceparent", "tracestate", "Content-Type",
                "Content-Encoding", "Accept-Encoding", "Cookie", "X-Custom", "Expect",
                "Transfer-Encoding", "Connection", "Host", "Content-Length", "Upgrade",
                "x-sidecar-request-id", "Via", "Forwarded", "X-Forwarded-Host")
VALUE_TEXT = st.sampled_from([
    "no-cache", "no-store", "only-if-cached", "max-age=-1", "max-age=1e999", "max-age=nan",
    "max-age=99999999999999999999", "max-stale, min-fresh=x", "0", "-1", "nan", "inf", "1e9",
    "00-zz-zz-01", "00-" + "0" * 32 + "-" + "0" * 16 + "-01", "ff-" + "f" * 32 + "-" + "f" * 16
    + "-ff", "Bearer ", "Bearer tok-b-SENTINEL", "Basic Og==", "gzip", "br", "deflate, gzip",
    "chunked", "close", "keep-alive, x-custom", "100-continue", "h2c", "evil.example",
    "a,,b, ,c", "x" * 8000, "caf\u00e9", "\u202e"]) | st.text(max_size=30).filter(
        lambda t: "\r" not in t and "\n" not in t)
RAW_VALUE = (VALUE_TEXT.map(lambda t: t.encode("utf-8", "surrogateescape"))
             | st.binary(max_size=40))


def _valid_field_value(value: bytes) -> bool:
    """RFC 9110 field-value: visible ASCII, obs-text (0x80-0xFF), SP and HTAB; no CTLs."""
    return all(b in (9, 32) or 33 <= b <= 126 or b >= 128 for b in value)


@FUZZ
@given(headers=st.lists(st.tuples(st.sampled_from(HEADER_NAMES), RAW_VALUE), min_size=1,
                        max_size=6),
       endpoint=st.sampled_from([*ENDPOINTS, "files", "models"]))
def test_header_values_duplicated_oversized_and_injected(
        stack: Stack, headers: list[tuple[str, bytes]], endpoint: str) -> None:
    """Garbage, duplicated, oversized, odd-encoded and CR/LF-injected values of the headers
    the sidecar reads (and hop-by-hop ones): valid HTTP gets a sidecar answer (4xx or 200);
    invalid HTTP gets aiohttp's 400; nothing injected ever reaches a provider."""
    body = orjson.dumps({"model": "fake/a", "messages": [{"role": "user", "content": "h"}]})
    lines = [b"POST /v1/" + endpoint.encode() + b" HTTP/1.1", b"Host: 127.0.0.1",
             b"Authorization: Bearer " + KEYS["team-a"].encode()]
    lines += [name.encode() + b": " + value for name, value in headers]
    raw = b"\r\n".join([*lines, b"Content-Length: %d" % len(body), b"Connection: close"])
    answer = exchange(stack.port, raw + b"\r\n\r\n" + body)
    assert not_a_failure(answer), (headers, answer.body[:300])
    parses = all(_valid_field_value(value) for _, value in headers) and all(
        len(value) < 8000 for _, value in headers)
    if parses and answer.all("Server") == ["llm-sidecar"]:
        assert_clean(answer, headers)
    else:
        assert answer.status in (400, 413, 417, 501) or answer.status < 300, (headers, answer)
    for fake in (stack.a, stack.b):
        for recorded in fake.requests:
            assert "Injected" not in recorded.headers, headers


def test_requests_whose_headers_are_too_large_get_a_clean_400(stack: Stack) -> None:
    """One header over aiohttp's 8,190-byte line limit, or thousands of headers: 400 (from
    aiohttp, before any route), the connection closed, nothing forwarded."""
    before = len(stack.a.requests) + len(stack.b.requests)
    for headers in ([("X-Big", "x" * 9000), AUTH],
                    [(f"X-{i}", "v") for i in range(20_000)]):
        answer = exchange(stack.port, request("GET", "/v1/models", headers=headers))
        assert answer.status == 400, headers[:1]
    assert len(stack.a.requests) + len(stack.b.requests) == before


# -- paths ----------------------------------------------------------------------------------

TRICKS = [
    "/v1/../sidecar/config", "/v1/%2e%2e/sidecar/config", "/v1/%2E%2E/sidecar/config",
    "/v1/%252e%252e/sidecar/config", "/v1/..%2Fsidecar/config", "/v1/..%2fsidecar%2fconfig",
    "/v1/%2e%2e%2fsidecar%2fconfig", "/v1\\..\\sidecar\\config", "/v1/..\\sidecar\\config",
    "/v1//sidecar/config", "//sidecar/config", "/./sidecar/config", "/v1/./../sidecar/config",
    "/sidecar/./config", "/sidecar//config", "/sidecar/config/", "/SIDECAR/CONFIG",
    "/sidecar/%63onfig", "/sidecar%2Fconfig", "/metrics/../sidecar/config", "/v1/../metrics",
    "/v1/%2e%2e/metrics", "/v1/%2e%2e/%2e%2e/etc/passwd", "/v1/..;/sidecar/config",
    "/v1/%00/../sidecar/config", "/v1/models/..%00/", "/v1/;/../sidecar/config",
    "http://127.0.0.1/sidecar/config", "http://evil.example/v1/../sidecar/config",
    "http://evil.example:1/v1/models", "https://evil.example/v1/files", "//evil.example/v1/x",
    "/v1//evil.example/models", "/v1/@evil.example/models", "/v1/models@evil.example",
    "/v1/%2F%2Fevil.example/x", "/v1/http://evil.example/x", "*", "/v1/models#@evil.example",
    "/v1/models?next=http://evil.example/", "/sidecar/ui/..%2f..%2fconfig",
    "/sidecar/ui/%2e%2e/config", "/sidecar/requests/..%2fconfig",
]


@pytest.fixture(scope="module")
def admin_stack() -> Iterator[Stack]:
    running = Stack(admin_port=True).start()
    yield running
    running.stop()


@pytest.mark.parametrize("listener", ["main", "separate-admin-port"])
def test_path_tricks_never_reach_an_admin_route_or_another_host(
        stack: Stack, admin_stack: Stack, listener: str) -> None:
    """Dot segments plain, encoded and double-encoded, encoded slashes, backslashes, `//`,
    absolute URLs and authority tricks in the request line, sent raw: an admin route answers
    only with the admin token (here: 401 or an OpenAI-shaped 4xx, never its content), the
    provider only sees paths under its base URL (/api/v1), and the evil host sees nothing."""
    target = stack if listener == "main" else admin_stack
    for method, path in [(m, p) for p in TRICKS for m in ("GET", "DELETE", "POST")]:
        raw = request(method, path, headers=[AUTH, ("Content-Type", "application/json")],
                      body=b'{"model":"fake/a"}' if method == "POST" else None)
        answer = exchange(target.port, raw)
        assert not_a_failure(answer), (method, path, answer.body[:300])
        text = answer.body.decode("utf-8", "replace")
        for marker in ('"config"', '"stages"', "llm_sidecar_requests_total", "# HELP"):
            assert marker not in text, (method, path)
        if answer.status >= 400 and answer.all("Server") == ["llm-sidecar"]:
            assert_clean(answer, (method, path))
    for recorded in target.a.requests:  # passthrough paths all go to provider a
        assert recorded.path.startswith(BASE_PATH + "/"), recorded.path
    app = target.app
    assert app is not None and app[DEPS].settings.admin.token is not None
