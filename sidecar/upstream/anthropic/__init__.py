"""Translation between OpenAI's chat completions and Anthropic's Messages API.

    request.py   an OpenAI chat request → an Anthropic Messages request, and the `Plan` the
                 answer's translation follows (streaming, usage chunk, the JSON answer tool)
    content.py   messages: system prompts, text / image / document parts, tool calls, tool
                 results, thinking blocks sent back
    response.py  an Anthropic message → a chat.completion; usage and stop reasons
    stream.py    Anthropic stream events → chat.completion.chunk events, one event at a time
    errors.py    Anthropic errors → OpenAI error shapes and statuses (529 → 503)
    models.py    Anthropic's model list → OpenAI's

Pure functions over parsed JSON: no I/O here (providers/anthropic.py does the sending).
Formats follow Anthropic's public documentation of the Messages API (version 2023-06-01).
"""

ANTHROPIC_VERSION = "2023-06-01"

__all__ = ["ANTHROPIC_VERSION"]
