"""The worst case of a request: a prompt bound never under the real token count, and the
completion limit (field, value, choices) it allows; plus the UTC calendar windows."""

from __future__ import annotations

import calendar
import time
from typing import Any

import orjson
import pytest

from sidecar.spend.estimate import (
    MESSAGE_TOKENS,
    REQUEST_TOKENS,
    TOOLS_TOKENS,
    UNKNOWN_CONTEXT_TOKENS,
    estimate,
    prompt_bound,
)
from sidecar.spend.windows import window_end, window_start


def bound_of(body: dict[str, Any], endpoint: str = "chat/completions", image_tokens: int = 1000,
             context: int | None = None) -> int:
    raw = orjson.dumps(body)
    return estimate(endpoint, raw, body, default_tokens=4096, image_tokens=image_tokens,
                    context_length=context).prompt_tokens


TEXTS = ["hello", "héllo wörld ✓ 日本語のテキスト", "🙂" * 50, "a\nb\tc\"d\\e", " " * 300,
         "x" * 10_000, "\u0000\u001f control"]


@pytest.mark.parametrize("text", TEXTS, ids=["ascii", "accents_cjk", "emoji", "escapes",
                                             "spaces", "long", "control"])
def test_bound_is_at_least_one_token_per_utf8_byte_of_text(text: str) -> None:
    """Whatever the characters, the bound is at least the text's UTF-8 byte count (no
    tokenizer emits more tokens than bytes) plus the per-message template overhead."""
    messages = [{"role": "system", "content": text}, {"role": "user", "content": [
        {"type": "text", "text": text}]}]
    bound = bound_of({"model": "m", "messages": messages})
    assert bound >= 2 * len(text.encode()) + 2 * 8 + REQUEST_TOKENS


def test_the_bound_counts_the_text_not_the_json_around_it() -> None:
    """A short chat request is bounded by its strings and the per-message allowance, well
    under its body's bytes (what the bound was); a field the bound does not know makes it
    fall back to the body's bytes."""
    body = {"model": "openai/gpt-4o-mini", "temperature": 0.7, "max_tokens": 200,
            "stream_options": {"include_usage": True}, "user": "someone@example.com",
            "messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "Hi there"}]}
    text = len("system") + len("Be brief.") + len("user") + len("Hi there")
    assert bound_of(body) == text + 2 * MESSAGE_TOKENS + REQUEST_TOKENS
    assert bound_of(body) < len(orjson.dumps(body)) / 3
    assert bound_of({**body, "x_new_field": "?"}) == len(orjson.dumps(
        {**body, "x_new_field": "?"})) + REQUEST_TOKENS


def test_documents_and_tool_calls_count_as_text() -> None:
    """Tool definitions and response formats count their JSON; tool-call arguments and ids
    their bytes; an odd `type` never breaks the walk."""
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    call = {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": {
        "name": "f", "arguments": '{"a": 1}'}}]}
    body = {"model": "m", "response_format": schema, "messages": [
        call, {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        {"role": "user", "content": [{"type": ["odd"], "text": "t"}]}]}
    assert bound_of(body) >= len(orjson.dumps(schema)) + len('{"a": 1}') + 3 * MESSAGE_TOKENS


def test_embeddings_of_token_ids_are_bounded_too() -> None:
    """Token-id inputs spend at least one byte of JSON per token."""
    ids = list(range(100_000, 100_500))
    assert bound_of({"model": "m", "input": [ids]}, "embeddings") >= len(ids)


def test_images_count_their_own_tokens_not_their_bytes() -> None:
    """An image is `image_tokens`, however big its base64; a URL image too."""
    data = "data:image/png;base64," + "A" * 1_000_000
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data}},
        {"type": "image_url", "image_url": {"url": "https://x.example/cat.png"}},
        {"type": "text", "text": "two cats?"}]}]}
    bound = bound_of(body, image_tokens=50_000)
    assert 2 * 50_000 <= bound < 2 * 50_000 + 1_000


def test_tools_stored_context_and_the_context_window() -> None:
    """Tools add the provider's tool prompt; a prompt stored upstream is bounded by the context
    window (a fixed large allowance when it is unknown); any bound is clamped to the window."""
    plain = {"model": "m", "messages": [{"role": "user", "content": "x" * 500}]}
    assert bound_of({**plain, "tools": [{"type": "function"}]}) >= bound_of(plain) + TOOLS_TOKENS
    stored = {"model": "m", "input": "more", "previous_response_id": "resp_1"}
    assert bound_of(stored, "responses", context=128_000) == 128_000
    assert bound_of(stored, "responses") > UNKNOWN_CONTEXT_TOKENS
    assert bound_of(plain, context=100) == 100


@pytest.mark.parametrize(("endpoint", "body", "field", "asked", "want", "choices"), [
    ("chat/completions", {"max_completion_tokens": 50, "max_tokens": 70}, "max_completion_tokens",
     50, 50, 1),
    ("chat/completions", {"max_tokens": 70, "n": 3}, "max_tokens", 70, 70, 3),
    ("chat/completions", {}, "max_tokens", None, 4096, 1),
    ("chat/completions", {"max_tokens": True}, "max_tokens", None, 4096, 1),
    ("completions", {"max_tokens": 9, "best_of": 4, "n": 2}, "max_tokens", 9, 9, 4),
    ("responses", {"max_output_tokens": 300}, "max_output_tokens", 300, 300, 1),
    ("embeddings", {"input": "x"}, None, None, 0, 1),
], ids=["max_completion_tokens", "n", "none", "bool_is_not_a_limit", "best_of", "responses",
        "embeddings"])
def test_completion_limit(endpoint: str, body: dict[str, Any], field: str | None,
                          asked: int | None, want: int, choices: int) -> None:
    """The limit field the client used (or the endpoint's default field), its value (else
    reserve_max_tokens) and how many answers are generated."""
    raw = orjson.dumps(body)
    est = estimate(endpoint, raw, body, default_tokens=4096, image_tokens=0,
                   context_length=None)
    assert (est.field, est.asked, est.want, est.choices) == (field, asked, want, choices)


def test_the_web_plugin_is_judged_on_the_candidate_priced() -> None:
    """`:online` adds web results upstream: the candidate being priced decides, not the
    body's model (a route alias, or the first of a `models` list)."""
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
    raw = orjson.dumps(body)

    def bound(model: str | None) -> int:
        return estimate("chat/completions", raw, body, default_tokens=4096, image_tokens=0,
                        context_length=128_000, model=model).prompt_tokens

    assert bound("openai/gpt-4o:online") == 128_000  # the whole context may be filled
    assert bound("openai/gpt-4o") == bound(None) < 1_000


def at(text: str) -> float:
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))


@pytest.mark.parametrize(("window", "now", "start", "end"), [
    ("minute", "2026-11-18T10:20:30", "2026-11-18T10:20:00", "2026-11-18T10:21:00"),
    ("hour", "2026-11-18T10:20:30", "2026-11-18T10:00:00", "2026-11-18T11:00:00"),
    ("day", "2026-11-18T10:20:30", "2026-11-18T00:00:00", "2026-11-19T00:00:00"),
    ("week", "2026-11-18T10:20:30", "2026-11-16T00:00:00", "2026-11-23T00:00:00"),
    ("week", "2026-11-16T00:00:00", "2026-11-16T00:00:00", "2026-11-23T00:00:00"),
    ("week", "2026-11-15T23:59:59", "2026-11-09T00:00:00", "2026-11-16T00:00:00"),
    ("month", "2026-12-31T23:59:59", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
    ("month", "2028-02-29T12:00:00", "2028-02-01T00:00:00", "2028-03-01T00:00:00"),
], ids=["minute", "hour", "day", "week_midweek", "week_monday", "week_sunday_night",
        "month_december", "month_leap_february"])
def test_windows_follow_the_utc_calendar(window: Any, now: str, start: str, end: str) -> None:
    """Windows start on the UTC calendar (weeks on Monday) and end where the next begins."""
    begun = window_start(window, at(now))
    assert (begun, window_end(window, begun)) == (at(start), at(end))


def test_total_window_never_ends() -> None:
    """The total window starts at 0 and never resets."""
    assert (window_start("total", at("2026-11-18T10:20:30")), window_end("total", 0)) == (0,
                                                                                         None)


def test_anthropic_base64_images_count_as_images() -> None:
    """A screenshot in an Anthropic image block (a tool result's, too) is bounded by
    spend.image_tokens, not by its base64 bytes."""
    data = "A" * 200_000
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": data}}
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        image, {"type": "tool_result", "tool_use_id": "t", "content": [image]}]}]}
    raw = orjson.dumps(body)
    bound = prompt_bound("messages", raw, body, 1_000, None)
    text = prompt_bound("messages", raw, {**body, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": []}]}]}, 1_000, None)
    assert bound == text + 2 * 1_000  # two images, not 400 KB of base64
    # a body with a field the text bound does not know falls back to its bytes, images apart
    odd = {**body, "an_unknown_field": 1}
    raw = orjson.dumps(odd)
    bound = prompt_bound("messages", raw, odd, 1_000, None)
    assert bound == len(raw) + REQUEST_TOKENS + 2 * 1_000 - 2 * len(data)
