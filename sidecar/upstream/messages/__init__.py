"""Translation of Anthropic's Messages API onto OpenAI-format upstreams (chat completions):
the other direction of upstream/anthropic/, for Anthropic-format clients (Claude Code, the
Anthropic SDKs) routed to any model an OpenAI-compatible provider serves.

    request.py   a Messages request → a chat completions request, and the `Plan` the answer's
                 translation follows (stream, stop sequences, the target's dialect)
    content.py   system and messages: text, images, documents, tool_use / tool_result turns,
                 thinking sent back
    response.py  a chat.completion → an Anthropic message; stop reasons and usage
    stream.py    chat.completion.chunk events → Anthropic's event stream, one event at a time
    errors.py    OpenAI-shaped errors → Anthropic's error shape

Pure functions over parsed JSON: no I/O here (providers/messages.py does the sending).
"""

from __future__ import annotations

__all__: list[str] = []
