"""Anthropic's Messages API as a client's wire format: what each stage needs to treat
`POST /v1/messages` (and `/v1/messages/count_tokens`) apart from OpenAI's endpoints.

    answer.py    an Anthropic message or stream event → the answer record (usage with cache
                 reads and writes, stop reason, model, id)
    meter.py     spend's stream meter for Anthropic events (counting, and the cap that ends a
                 stream with message_delta stop_reason max_tokens + message_stop)
    replay.py    the cache: a stored message unfolded into the events its stream would have
                 been, and a stored stream folded into one message
    fields.py    where redaction finds the text of a Messages body
    restorer.py  placeholders restored in an Anthropic answer, JSON or streamed

Which endpoint speaks which wire is the `wire` column of endpoints.py; errors take Anthropic's
shape in errors.py, content capture reads Anthropic's bodies in telemetry/content.py and
pipeline/inspect.py, and count_tokens without an Anthropic upstream is answered by
upstream/providers/messages.py. Translation to and from
OpenAI-format upstreams is upstream/messages/ (the other direction: upstream/anthropic/).
Pure functions over parsed JSON, following Anthropic's documentation (version 2023-06-01).
"""

from __future__ import annotations

__all__: list[str] = []
