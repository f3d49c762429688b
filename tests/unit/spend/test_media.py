"""Media prices: the worst case each media request holds and what its answer is billed, per
image by size and quality, per character, per second of audio, per token when the answer
reports tokens; the book's order (config, upstream, bundled)."""

from __future__ import annotations

import pytest

from sidecar.call import Usage
from sidecar.config.spend import SpendSettings
from sidecar.spend.media import MediaBook, media_from_openrouter, tariff

SPEND = SpendSettings()
BOOK = MediaBook(SPEND)


def price(model: str):  # type: ignore[no-untyped-def]
    found = BOOK.lookup(model)
    assert found is not None, model
    return found


@pytest.mark.parametrize(("model", "body", "hold"), [
    ("dall-e-3", {"quality": "hd", "size": "1024x1792"}, 120_000_000),
    ("dall-e-3", {}, 40_000_000),  # OpenAI's defaults: 1024x1024, standard
    ("dall-e-3", {"quality": "auto", "size": "auto"}, 120_000_000),  # the dearest
    ("dall-e-2", {"n": "3", "size": "256x256"}, 48_000_000),  # a form's n is a string
    ("dall-e-2", {"size": "2048x2048"}, 20_000_000),  # a size not listed: the dearest
])
def test_images_hold_n_times_the_dearest_matching_price(model: str, body: dict[str, str],
                                                         hold: int) -> None:
    """Size and quality as asked; unset: OpenAI's defaults; auto or unknown: the dearest."""
    found = tariff("images", price(model), {"prompt": "", **body}, None, SPEND)
    assert found is not None and found.hold == hold


def test_gpt_image_holds_its_prompt_and_bills_its_tokens() -> None:
    """gpt-image-1 holds the image and its prompt's bytes at the text price; an answer with
    usage in tokens is billed by tokens, one without by its images."""
    found = tariff("images", price("gpt-image-1"), {"prompt": "x" * 100, "quality": "high"},
                   None, SPEND)
    assert found is not None and found.hold == 250_000_000 + 100 * 5_000
    usage = Usage(prompt_tokens=50, completion_tokens=4160, media_tokens=10)
    assert found.measured(usage) and found.cost(usage) == 40 * 5_000 + 10 * 10_000 + 4160 * 40_000
    assert found.cost(Usage(images=1)) == 250_000_000


def test_speech_is_priced_by_characters_exactly() -> None:
    """tts-1: 15 USD per million characters, known before the call, billed the same."""
    found = tariff("speech", price("tts-1"), {"input": "é" * 200}, None, SPEND)
    assert found is not None and found.hold == found.cost(Usage()) == 3_000_000
    assert found.measured(None)


def test_transcription_holds_the_files_length_at_the_lowest_bitrate() -> None:
    """No form: nothing to hold but the prompt; the answer's seconds (rounded up) are billed;
    without them, the hold."""
    found = tariff("transcription", price("whisper-1"), {}, None, SPEND)
    assert found is not None and found.hold == 0
    assert found.cost(Usage(seconds=12.2)) == 13 * 100_000
    assert not found.measured(Usage()) and found.cost(Usage()) == found.hold


def test_the_books_order_and_upstream_media_fields() -> None:
    """spend.media_prices beats the bundled table; `openai/` names find the bare ones; an
    OpenRouter entry with image_output prices images; one without media fields is not media."""
    book = MediaBook(SpendSettings.model_validate({"media_prices": {
        "dall-e-*": {"images": {"*": 1.0}}}}))
    assert book.lookup("dall-e-3") is not None
    assert book.lookup("dall-e-3").per_image("*", "*") == 1e9  # type: ignore[union-attr]
    assert BOOK.lookup("openai/whisper-1") is not None and BOOK.lookup("acme/x") is None
    upstream = media_from_openrouter({"id": "x", "pricing": {"prompt": "0.000001",
                                                             "image_output": "0.03"}})
    assert upstream is not None and upstream.per_image("", "") == pytest.approx(3e7)
    assert media_from_openrouter({"id": "x", "pricing": {"prompt": "1"}}) is None
