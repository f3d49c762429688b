"""Every paid endpoint is governed (issue 18): images (generations, edits, variations), speech,
transcriptions, translations and moderations, driven by the openai SDK through the real
sidecar to an upstream that answers as OpenAI does. Under a tiny blocking budget each is refused
before the upstream; in block mode an email in its text is a 400 with nothing sent; allowed, it
is priced from the bundled media table and recorded, one ledger row naming the endpoint; in
mask mode a form's redacted prompt reaches the upstream in a form rebuilt around the same
file bytes."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from tests.conftest import RunningSidecar, StartSidecar
from tests.fakes.media import MediaUpstream
from tests.fakes.profiles import ALL
from tests.fakes.spend import flush, get_json, rows

SIDECAR_BASE = {"cache": {"backend": "off"}}
EMAIL = "jane.doe@example.com"
AUDIO = b"\xff\xfb" + bytes(range(256)) * 29 + b"\x00" * 72  # 7,500 bytes: 10 s at 6 kbit/s
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SPEECH = "Read this aloud, slowly. " * 8  # 200 characters

Call = Callable[[openai.AsyncOpenAI, str], Awaitable[Any]]

PROFILES = ALL  # each test runs in the module, defaults and everything profiles


@pytest.fixture
async def media() -> AsyncIterator[MediaUpstream]:
    fake = MediaUpstream()
    await fake.start()
    yield fake
    await fake.close()


async def generate(sdk: openai.AsyncOpenAI, text: str) -> Any:
    return await sdk.images.generate(model="dall-e-3", prompt=text, size="1024x1024",
                                     quality="hd")


async def edit(sdk: openai.AsyncOpenAI, text: str) -> Any:
    return await sdk.images.edit(model="dall-e-2", image=("a.png", PNG, "image/png"),
                                 prompt=text, n=2, size="512x512")


async def variation(sdk: openai.AsyncOpenAI, text: str) -> Any:
    with warnings.catch_warnings():  # the SDK marks it deprecated; OpenAI still serves it
        warnings.simplefilter("ignore", DeprecationWarning)
        return await sdk.images.create_variation(image=("a.png", PNG, "image/png"),
                                                 size="256x256")


async def speech(sdk: openai.AsyncOpenAI, text: str) -> Any:
    answer = await sdk.audio.speech.create(model="tts-1", voice="alloy", input=text)
    return answer.read()


async def transcribe(sdk: openai.AsyncOpenAI, text: str) -> Any:
    return await sdk.audio.transcriptions.create(model="whisper-1", file=("a.mp3", AUDIO),
                                                 prompt=text)


async def translate(sdk: openai.AsyncOpenAI, text: str) -> Any:
    with warnings.catch_warnings():  # the SDK marks it deprecated; OpenAI still serves it
        warnings.simplefilter("ignore", DeprecationWarning)
        return await sdk.audio.translations.create(
            model="whisper-1", file=("a.mp3", AUDIO), prompt=text,
            response_format="verbose_json")


async def transcribe_text(sdk: openai.AsyncOpenAI, text: str) -> Any:
    return await sdk.audio.transcriptions.create(model="whisper-1", file=("a.mp3", AUDIO),
                                                 prompt=text, response_format="text")


async def moderate(sdk: openai.AsyncOpenAI, text: str) -> Any:
    return await sdk.moderations.create(input=[text, "and another"])


# endpoint, call, the text it carries, what it costs in nano-dollars (OpenAI's prices), whether
# that is the sidecar's hold (the answer says nothing of its cost)
PAID = [
    ("images/generations", generate, "A red fox", 80_000_000, False),  # dall-e-3 hd: 0.08
    ("images/edits", edit, "Add a hat", 36_000_000, False),  # 2 x dall-e-2 512x512: 0.018
    ("images/variations", variation, "", 16_000_000, False),  # dall-e-2 256x256: 0.016
    ("audio/speech", speech, SPEECH, 3_000_000, False),  # 200 characters x 15 USD / 1M
    ("audio/transcriptions", transcribe, "Names: Ann", 1_300_000, False),  # 13 s x 0.006/min
    ("audio/translations", translate, "Names: Ann", 1_300_000, False),  # verbose_json duration
    # text format: no usage, no duration: the hold, 7,500 bytes at 750 a second = 10 s
    ("audio/transcriptions", transcribe_text, "Names: Ann", 1_000_000, True),
]
TEXTS = [*[(endpoint, call) for endpoint, call, text, _, _ in PAID if text][:-1],
         ("moderations", moderate)]


def ids(cases: list[Any]) -> list[str]:
    return [f"{case[0]}-{case[1].__name__}" for case in cases]


async def sidecar_for(start_sidecar: StartSidecar, media: MediaUpstream, limit_usd: float,
                      **extra: Any) -> RunningSidecar:
    return await start_sidecar({"upstream": {"url": media.url}, **extra, "spend": {
        "budgets": [{"name": "cap", "limit_usd": limit_usd}], **extra.get("spend", {})}})


def sdk_for(sidecar: RunningSidecar) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=sidecar.v1, api_key="k", max_retries=0)


@pytest.mark.parametrize(("endpoint", "call", "text", "cost", "held"), PAID, ids=ids(PAID))
async def test_a_tiny_blocking_budget_refuses_every_paid_endpoint(
        start_sidecar: StartSidecar, media: MediaUpstream, endpoint: str, call: Call,
        text: str, cost: int, held: bool) -> None:
    """With 0.000001 USD a day and nothing spent, each paid call is refused with 402
    budget_exceeded (its worst case cannot fit, however long it waits) and never reaches
    the upstream."""
    sidecar = await sidecar_for(start_sidecar, media, 0.000001)
    sdk = sdk_for(sidecar)
    try:
        with pytest.raises(openai.APIStatusError) as caught:
            await call(sdk, text or "x")
    finally:
        await sdk.close()
    assert caught.value.status_code == 402
    body = caught.value.body
    assert isinstance(body, dict) and body["code"] == "budget_exceeded"
    assert media.requests == []


@pytest.mark.parametrize(("endpoint", "call"), TEXTS, ids=ids(TEXTS))
async def test_block_mode_refuses_an_email_in_any_text_field(
        start_sidecar: StartSidecar, media: MediaUpstream, endpoint: str, call: Call) -> None:
    """privacy.redact.mode block: an email address in an image prompt, a speech input, a
    transcription or translation prompt or a moderation input is a 400 pii_detected, and
    nothing is sent upstream."""
    sidecar = await sidecar_for(start_sidecar, media, 100.0,
                                privacy={"redact": {"mode": "block"}})
    sdk = sdk_for(sidecar)
    try:
        with pytest.raises(openai.BadRequestError) as caught:
            await call(sdk, f"Write to {EMAIL} please")
    finally:
        await sdk.close()
    body = caught.value.body
    assert isinstance(body, dict) and body["code"] == "pii_detected"
    assert body["metadata"]["entities"] == {"EMAIL": 1}
    assert media.requests == []


@pytest.mark.parametrize(("endpoint", "call", "text", "cost", "held"), PAID, ids=ids(PAID))
async def test_an_allowed_paid_call_is_priced_and_recorded(
        start_sidecar: StartSidecar, media: MediaUpstream, tmp_path: Path, endpoint: str,
        call: Call, text: str, cost: int, held: bool) -> None:
    """Under a budget that can pay, the call is served, billed at OpenAI's published price
    (from what the answer says: images returned, seconds transcribed, characters spoken; the
    hold, marked estimated, when it says nothing), the budget counts it, and the ledger has
    one row naming the endpoint."""
    sidecar = await sidecar_for(start_sidecar, media, 10.0)
    sdk = sdk_for(sidecar)
    try:
        await call(sdk, text)
    finally:
        await sdk.close()
    assert [r.path for r in media.requests] == [endpoint]
    await flush(sidecar)
    [row] = rows(tmp_path / "ledger.db")
    assert (row["endpoint"], row["cost_nusd"], bool(row["estimated"])) == (endpoint, cost, held)
    cap = (await get_json(sidecar.url + "/sidecar/budgets"))["budgets"][0]
    assert round(cap["spent_usd"] * 1e9) == cost and cap["entries"][0]["reserved_usd"] == 0


async def test_moderations_are_free_yet_recorded_under_a_tiny_budget(
        start_sidecar: StartSidecar, media: MediaUpstream, tmp_path: Path) -> None:
    """A moderation costs nothing: a budget with no room still serves it, and it is recorded
    (cost 0, the endpoint named, the default model)."""
    sidecar = await sidecar_for(start_sidecar, media, 0.000001)
    sdk = sdk_for(sidecar)
    try:
        answer = await moderate(sdk, "is this fine?")
    finally:
        await sdk.close()
    assert len(answer.results) == 2
    await flush(sidecar)
    [row] = rows(tmp_path / "ledger.db")
    assert (row["endpoint"], row["cost_nusd"], row["model"]) == (
        "moderations", 0, "omni-moderation-latest")


async def test_gpt_image_usage_in_tokens_is_what_is_billed(
        start_sidecar: StartSidecar, media: MediaUpstream, tmp_path: Path) -> None:
    """gpt-image-1 reports its usage in tokens: billed text input, image input and output
    tokens at their prices, not the per-image estimate."""
    media.image_usage = {"input_tokens": 50, "output_tokens": 4160, "total_tokens": 4210,
                         "input_tokens_details": {"text_tokens": 40, "image_tokens": 10}}
    sidecar = await sidecar_for(start_sidecar, media, 10.0)
    sdk = sdk_for(sidecar)
    try:
        await sdk.images.generate(model="gpt-image-1", prompt="A fox", quality="high")
    finally:
        await sdk.close()
    await flush(sidecar)
    [row] = rows(tmp_path / "ledger.db")
    assert row["cost_nusd"] == 40 * 5_000 + 10 * 10_000 + 4160 * 40_000
    assert (row["prompt_tokens"], row["completion_tokens"]) == (50, 4160)


async def test_mask_mode_rebuilds_the_form_around_the_same_file(
        start_sidecar: StartSidecar, media: MediaUpstream) -> None:
    """A transcription prompt with an email address reaches the upstream redacted, in a form
    rebuilt with the same audio bytes and every other field as sent."""
    sidecar = await sidecar_for(start_sidecar, media, 10.0, privacy={"redact": {"mode": "mask"}})
    sdk = sdk_for(sidecar)
    try:
        await sdk.audio.transcriptions.create(model="whisper-1", file=("a.mp3", AUDIO),
                                              prompt=f"Caller: {EMAIL}", language="en")
    finally:
        await sdk.close()
    [sent] = media.requests
    assert EMAIL not in sent.fields["prompt"] and sent.fields["prompt"].startswith("Caller: ")
    assert sent.fields["language"] == "en" and sent.fields["model"] == "whisper-1"
    assert sent.files == {"file": AUDIO}


async def test_a_media_model_with_no_price_is_refused_under_a_blocking_budget(
        start_sidecar: StartSidecar, media: MediaUpstream) -> None:
    """An image model the sidecar cannot price, under a blocking budget, is 403
    model_not_allowed naming spend.media_prices; nothing is sent."""
    sidecar = await sidecar_for(start_sidecar, media, 10.0)
    sdk = sdk_for(sidecar)
    try:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await sdk.images.generate(model="acme/painter-9", prompt="A fox")
    finally:
        await sdk.close()
    body = caught.value.body
    assert isinstance(body, dict) and "spend.media_prices" in body["message"]
    assert media.requests == []


async def test_configured_media_prices_win(start_sidecar: StartSidecar, media: MediaUpstream,
                                           tmp_path: Path) -> None:
    """spend.media_prices (per minute here) beats the bundled table."""
    sidecar = await sidecar_for(start_sidecar, media, 10.0, spend={
        "media_prices": {"whisper-*": {"per_minute": 0.6}}})
    sdk = sdk_for(sidecar)
    try:
        await transcribe(sdk, "")
    finally:
        await sdk.close()
    await flush(sidecar)
    [row] = rows(tmp_path / "ledger.db")
    assert row["cost_nusd"] == 13 * 10_000_000  # 13 s at 0.01 USD a second


@pytest.mark.parametrize(("endpoint", "call", "text", "cost", "held"), PAID[:1] + PAID[3:4],
                         ids=ids(PAID[:1] + PAID[3:4]))
async def test_a_warning_budget_past_its_limit_serves_and_says_so(
        start_sidecar: StartSidecar, media: MediaUpstream, endpoint: str, call: Call,
        text: str, cost: int, held: bool) -> None:
    """`action: warn`: a media call past the limit is served, with x-sidecar-budget-warning
    naming the budget, as a chat is (the same hold for every paid call, Spend.hold)."""
    sidecar = await start_sidecar({"upstream": {"url": media.url}, "spend": {
        "budgets": [{"name": "soft", "limit_usd": 0.000001, "action": "warn"}]}})
    seen: list[str | None] = []

    async def keep(response: Any) -> None:
        seen.append(response.headers.get("x-sidecar-budget-warning"))

    sdk = openai.AsyncOpenAI(base_url=sidecar.v1, api_key="k", max_retries=0,
                             http_client=httpx2.AsyncClient(event_hooks={"response": [keep]}))
    try:
        await call(sdk, text)
    finally:
        await sdk.close()
    assert seen == ["soft"] and len(media.requests) == 1
