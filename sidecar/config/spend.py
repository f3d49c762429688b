"""Settings for spend guardrails: `spend` (INTERFACE.md §2, issue 9)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from sidecar.config.base import PositiveSeconds, Section, UsdPerToken, yaml_off


class Price(Section):
    """USD per token (per request for `request`), OpenRouter's /models `pricing` shape."""

    prompt: UsdPerToken = 0.0
    completion: UsdPerToken = 0.0
    request: UsdPerToken = 0.0
    input_cache_read: UsdPerToken | None = None
    input_cache_write: UsdPerToken | None = None
    internal_reasoning: UsdPerToken | None = None


class MediaPrice(Section):
    """What the endpoints not priced per token cost (spend/media.py), in USD: per image by
    "SIZE/QUALITY" (`*` for any: "1024x1024/hd", "1024x1024", "*"), per million characters of
    speech input, per minute of transcribed audio; and per token (as `prices`) for the answers
    that report their usage in tokens (gpt-image-1, gpt-4o-transcribe, gpt-4o-mini-tts)."""

    images: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    per_million_characters: Annotated[float, Field(ge=0)] | None = None
    per_minute: Annotated[float, Field(ge=0)] | None = None
    text_input: UsdPerToken | None = None
    media_input: UsdPerToken | None = None  # an image or audio input token
    output: UsdPerToken | None = None

    @field_validator("images")
    @classmethod
    def _image_keys(cls, images: dict[str, float]) -> dict[str, float]:
        for key in images:
            if key.count("/") > 1 or not all(key.split("/")):
                raise ValueError(f"'{key}': write SIZE/QUALITY, SIZE or * (e.g. 1024x1024/hd)")
        return images


Window = Literal["minute", "hour", "day", "week", "month", "total"]
Scope = Literal["global", "key", "user", "tag", "model"]


class Budget(Section):
    name: str
    scope: Scope = "global"
    window: Window = "day"
    limit_usd: Annotated[float, Field(ge=0)]
    action: Literal["block", "warn"] = "block"
    # Globs on the scope's value (key names, users, tags, models) the budget applies to; null:
    # every value, each with its own limit. Ignored for scope global.
    match: list[str] | None = None


class RateLimit(Section):
    scope: Scope = "key"
    rpm: Annotated[int, Field(gt=0)] | None = None
    tpm: Annotated[int, Field(gt=0)] | None = None
    match: list[str] | None = None  # as Budget.match

    @model_validator(mode="after")
    def _something(self) -> RateLimit:
        if self.rpm is None and self.tpm is None:
            raise ValueError("set rpm, tpm or both")
        return self


class SpendSettings(Section):
    ledger: str | None = None  # None: sqlite:///<state_dir>/ledger.db; "off": no spend stage
    flush_interval_s: PositiveSeconds = 1.0
    on_ledger_error: Literal["fail_closed", "fail_open"] = "fail_closed"
    prices: dict[str, Price] = Field(default_factory=dict)
    unknown_model_price: Literal["block", "free"] | Price = "block"
    reserve_max_tokens: Annotated[int, Field(gt=0)] = 4096
    budgets: list[Budget] = Field(default_factory=list)
    rate_limits: list[RateLimit] = Field(default_factory=list)
    # Prices from the upstream's GET /models (OpenRouter's format): fetched at start, waiting at
    # most prices_fetch_timeout_s before serving with the bundled table, then every
    # prices_refresh_s.
    fetch_prices: bool = True
    prices_fetch_timeout_s: PositiveSeconds = 2.0
    prices_refresh_s: PositiveSeconds = 3600.0
    # Prompt tokens one image may cost, for the worst-case reservation: gpt-4o-mini counts up
    # to 2833 + 8 x 5667 = 48,169 tokens for one high-detail image, the most of any documented
    # model. Lower it when your models are known to count less.
    image_tokens: Annotated[int, Field(ge=0)] = 50_000
    # The media endpoints (images, speech, transcriptions): prices by model glob, first match
    # wins, before the upstream's /models and the bundled table (spend/media_prices.json).
    media_prices: dict[str, MediaPrice] = Field(default_factory=dict)
    # A transcription's audio is held at its file's size over the lowest bitrate the API takes
    # (6 kbit/s Opus: 750 bytes a second), at most max_audio_seconds, until the answer says.
    audio_bytes_per_second: Annotated[int, Field(gt=0)] = 750
    max_audio_seconds: PositiveSeconds = 36_000.0
    # Passthrough paths no price covers (fine-tuning, runs, vector stores, ...), under a
    # blocking budget: block (403 unpriced_path), record (served, a ledger row at cost 0) or
    # allow (served, no row). Without a blocking budget block records. free_paths: globs of
    # paths (after /v1) the operator knows to be free.
    unpriced_paths: Literal["block", "record", "allow"] = "block"
    free_paths: list[str] = Field(default_factory=list)
    # A batch (POST /v1/batches) is charged its input file's worst case at submission, at this
    # share of the synchronous price (OpenAI's Batch API: half).
    batch_price_factor: Annotated[float, Field(gt=0, le=1)] = 0.5
    # A request refused only because money is held by requests in flight waits up to this long
    # for them to settle before it is answered 429 budget_held (0: answer at once).
    hold_wait_s: Annotated[float, Field(ge=0)] = 5.0
    # A non-streamed call whose client left is still read, to bill what the provider bills:
    # for at most this long, and at most this many at once (beyond: billed its hold).
    cancelled_read_s: PositiveSeconds = 300.0
    cancelled_reads_max: Annotated[int, Field(gt=0)] = 256
    redis_timeout_s: PositiveSeconds = 0.5  # a Redis ledger slower than this is unavailable
    reservation_ttl_s: PositiveSeconds = 3600.0  # Redis: a dead replica's holds expire after
    max_pending_rows: Annotated[int, Field(gt=0)] = 100_000  # kept while the ledger can't write

    _off = field_validator("ledger", mode="before")(yaml_off)

    @field_validator("ledger")
    @classmethod
    def _ledger_url(cls, value: str | None) -> str | None:
        if value is not None and value != "off" and not value.startswith(
                ("sqlite:///", "redis://", "rediss://")):
            raise ValueError("must be sqlite:///path, redis://host:port/db or off")
        return value

    @field_validator("budgets")
    @classmethod
    def _unique_names(cls, budgets: list[Budget]) -> list[Budget]:
        names = [b.name for b in budgets]
        if len(set(names)) != len(names):
            raise ValueError("budget names must be unique")
        return budgets
