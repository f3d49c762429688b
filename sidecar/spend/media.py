"""Prices and worst cases of the endpoints not priced per token: images, speech, transcription.

Which price applies to a model, first hit wins (as the token price book, price_book.py):
  1. `spend.media_prices`, by model glob in the order written;
  2. the upstream's GET /models, where its `pricing` has media fields (OpenRouter's:
     `image_output` USD per generated image, `audio` USD per audio input token, with
     `prompt` and `completion` as the text input and output token prices);
  3. the bundled table (`media_prices.json`: OpenAI's published prices, dated).
A model with an `openai/` prefix is looked up without it too.

What a request holds (its worst case, before the call) and is billed (after):

    images         hold: n x the dearest matching per-image price (size and quality as asked;
                   `auto` or unset: the dearest of the model's) + its prompt's UTF-8 bytes x
                   the text input price + each input image (a form's files) x
                   `spend.image_tokens` x the image input price + partial images x 100 output
                   tokens; billed: the answer's `usage` in tokens at the token prices when it
                   reports one (gpt-image-1), else the images it holds x the per-image price
    speech         hold and bill: the input's characters x the per-character price (known
                   before the call); a stream's `usage` in tokens when it reports one
    transcription  hold: the audio's length bounded by its file's bytes over
                   `spend.audio_bytes_per_second` (the lowest bitrate the API takes), at most
                   `spend.max_audio_seconds`, x the per-second price + the prompt's bytes x the
                   text input price; billed: `usage` in tokens, else `usage.seconds` or a
                   verbose_json answer's `duration`, else (text, srt, vtt) the hold, marked
                   estimated
    free           moderations: held and billed 0, recorded

Money in nano-dollars, as everywhere in spend (pricing.py).
"""

from __future__ import annotations

import importlib.resources
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from sidecar.call import Usage
from sidecar.config.spend import MediaPrice as MediaPriceSettings
from sidecar.config.spend import SpendSettings
from sidecar.endpoints import Meter
from sidecar.forms import Form
from sidecar.globs import Globs
from sidecar.spend.pricing import NANO, _number

__all__ = ["MediaBook", "MediaPrice", "MediaTariff", "load_bundled_media", "media_from_openrouter",
           "tariff"]

PARTIAL_IMAGE_TOKENS = 100  # output tokens OpenAI bills per partial image of a stream
_DEFAULT_SIZE = "1024x1024"


@dataclass(frozen=True, slots=True)
class MediaPrice:
    """Nano-dollars per unit."""

    source: str  # config | upstream | bundled
    images: tuple[tuple[str, str, float], ...] = ()  # (size, quality, per image); "*": any
    per_character: float = 0.0
    per_second: float = 0.0
    text_input: float = 0.0  # per token
    media_input: float = 0.0  # per image or audio input token
    output: float = 0.0  # per output token

    @property
    def tokens(self) -> bool:
        """Priced per token too: an answer's usage in tokens can be billed."""
        return bool(self.text_input or self.media_input or self.output)

    def per_image(self, size: str, quality: str) -> float | None:
        """The dearest price an image of this size and quality can have (`*`: any; "": not
        asked, so OpenAI's default: 1024x1024 for the DALL-E models, `auto` (any) for the
        token-priced gpt-image models; `standard` quality where the model has it)."""
        if not size:
            size = _DEFAULT_SIZE if not self.tokens and any(
                s == _DEFAULT_SIZE for s, _, _ in self.images) else "*"
        if not quality:
            quality = "standard" if any(q == "standard" for _, q, _ in self.images) else "*"
        found = [price for s, q, price in self.images
                 if (size == "*" or s in ("*", size)) and (quality == "*" or q in ("*", quality))]
        if not found and self.images:  # a size or quality the table does not list
            found = [price for _, _, price in self.images]
        return max(found) if found else None

    @classmethod
    def of(cls, settings: MediaPriceSettings, source: str) -> MediaPrice:
        def per_token(usd: float | None) -> float:
            return (usd or 0.0) * NANO
        images = []
        for key, usd in settings.images.items():
            size, _, quality = key.partition("/")
            images.append((size, quality or "*", usd * NANO))
        return cls(source, tuple(images),
                   per_character=(settings.per_million_characters or 0.0) * NANO / 1e6,
                   per_second=(settings.per_minute or 0.0) * NANO / 60,
                   text_input=per_token(settings.text_input),
                   media_input=per_token(settings.media_input), output=per_token(settings.output))


def media_from_openrouter(entry: dict[str, Any]) -> MediaPrice | None:
    """One GET /models entry's media prices, when its `pricing` has any."""
    pricing = entry.get("pricing")
    if not isinstance(pricing, dict):
        return None
    image, audio = _number(pricing.get("image_output")), _number(pricing.get("audio"))
    if image is None and audio is None:
        return None
    prompt, completion = _number(pricing.get("prompt")), _number(pricing.get("completion"))
    return MediaPrice("upstream", (("*", "*", image * NANO),) if image is not None else (),
                      text_input=(prompt or 0.0) * NANO, media_input=(audio or 0.0) * NANO,
                      output=(completion or 0.0) * NANO)


def load_bundled_media() -> tuple[dict[str, MediaPrice], str, str]:
    """The bundled table: (prices, source, date retrieved)."""
    raw = importlib.resources.files("sidecar.spend").joinpath("media_prices.json")
    payload = orjson.loads(raw.read_bytes())
    prices = {model: MediaPrice.of(MediaPriceSettings.model_validate(spec), "bundled")
              for model, spec in payload["models"].items()}
    return prices, payload["source"], payload["retrieved"]


class MediaBook:
    """The media prices of one configuration: config globs, then what the upstream listed,
    then the bundled table. `fetched` is replaced whole by the price book on each refresh."""

    def __init__(self, spend: SpendSettings) -> None:
        self._configured = [(Globs([glob]), MediaPrice.of(price, "config"))
                            for glob, price in spend.media_prices.items()]
        self.fetched: Mapping[str, MediaPrice] = {}
        self._bundled, self.source, self.retrieved = load_bundled_media()

    def lookup(self, model: str) -> MediaPrice | None:
        for globs, price in self._configured:
            if globs.match(model):
                return price
        for name in dict.fromkeys((model, model.removeprefix("openai/"))):
            found = self.fetched.get(name) or self._bundled.get(name)
            if found is not None:
                return found
        return None


@dataclass(slots=True)
class MediaTariff:
    """One media request's price: its hold, and what an answer costs (pricing.ModelPrice's
    `cost` for the bill). `hold` is the worst case; `cost` never bills more than the answer
    says, and bills the hold when the answer says nothing (`measured` False)."""

    meter: Meter
    price: MediaPrice
    hold: int  # nano-dollars
    text_tokens: int  # the text input's bound (its UTF-8 bytes), for tokens-per-minute limits
    per_image: float = 0.0
    characters: int = 0

    def measured(self, usage: Usage | None) -> bool:
        """The answer says what it cost (else `cost` bills the hold)."""
        if self.meter == "free":
            return True
        if usage is None:
            return self.meter == "speech"
        if (usage.prompt_tokens or usage.completion_tokens) and self.price.tokens:
            return True
        return (self.meter == "speech" or (self.meter == "images" and usage.images > 0)
                or (self.meter == "transcription" and usage.seconds > 0))

    def cost(self, usage: Usage) -> int:
        """Rounded to the nano-dollar, as ModelPrice.cost (holds round up instead)."""
        if self.meter == "free":
            return 0
        price = self.price
        if (usage.prompt_tokens or usage.completion_tokens) and price.tokens:
            media = min(usage.media_tokens, usage.prompt_tokens)
            return round((usage.prompt_tokens - media) * price.text_input
                         + media * price.media_input + usage.completion_tokens * price.output)
        if self.meter == "speech":
            return round(self.characters * price.per_character)
        if self.meter == "images" and usage.images > 0:
            return round(usage.images * self.per_image)
        if self.meter == "transcription" and usage.seconds > 0:
            return round(math.ceil(usage.seconds) * price.per_second)
        return self.hold


def tariff(meter: Meter, price: MediaPrice, body: Mapping[str, Any], form: Form | None,
           spend: SpendSettings) -> MediaTariff | None:
    """The request's worst case and how to bill it; None when `price` does not price this
    meter (a speech model with no per-character price, ...)."""
    if meter == "free":
        return MediaTariff(meter, price, 0, 0)
    text = _text_bytes(body)
    text_cost = text * price.text_input
    if meter == "images":
        per_image = price.per_image(_choice(body, "size"), _choice(body, "quality"))
        if per_image is None:
            return None
        n = max(1, _integer(body.get("n"), 1))
        inputs = form.files if form is not None else 0
        partial = _integer(body.get("partial_images"), 0)
        hold = (n * per_image + text_cost + inputs * spend.image_tokens * price.media_input
                + n * max(0, partial) * PARTIAL_IMAGE_TOKENS * price.output)
        return MediaTariff(meter, price, math.ceil(hold), text, per_image=per_image)
    if meter == "speech":
        if not price.per_character:
            return None
        characters = sum(len(v) for k in ("input", "instructions")
                         if isinstance(v := body.get(k), str))
        return MediaTariff(meter, price, round(characters * price.per_character), text,
                           characters=characters)  # exact: the price of what is sent
    if not price.per_second:
        return None
    audio = form.file_bytes if form is not None else 0
    seconds = min(math.ceil(audio / spend.audio_bytes_per_second), spend.max_audio_seconds)
    return MediaTariff(meter, price, math.ceil(seconds * price.per_second + text_cost), text)


def _text_bytes(body: Mapping[str, Any]) -> int:
    """UTF-8 bytes of the text the model reads: at least as many as its tokens."""
    total = 0
    for key in ("prompt", "input", "instructions"):
        value = body.get(key)
        if isinstance(value, str):
            total += len(value.encode())
    return total


def _choice(body: Mapping[str, Any], key: str) -> str:
    """The size or quality asked; "*" for `auto` (the model picks: any), "" when unset."""
    value = body.get(key)
    if not isinstance(value, str) or not value:
        return ""
    return "*" if value == "auto" else value


def _integer(value: Any, default: int) -> int:
    """A number from JSON (int) or a form (str); the default when it is neither."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return default
