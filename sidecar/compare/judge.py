"""The optional judge of a shadow rule: a model asked to score how well the candidate's answer
stands in for the primary's, from 0 (not at all) to 1 (as good).

It sees the request (redacted, as both models saw it) and both answers, each cut to
`MAX_CHARS`, and is asked for a number alone; the first number of its answer is the score, and
an answer without one in [0, 1] counts as a judge error. The call is a chat completion through
the rule's own pipeline, so its cost is paid from the rule's budget and recorded under the
rule's tag like the candidate's.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

MAX_CHARS = 8_000  # of the request and of each answer: bounds what a judgement costs
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
INSTRUCTIONS = (
    "You compare two answers to the same request. Answer A is the reference. Score how well "
    "answer B could replace answer A for the person who sent the request: 1 means as good or "
    "better, 0 means useless or wrong. Reply with the score alone, a number between 0 and 1, "
    "nothing else.")


def request_text(endpoint: str, body: dict[str, Any]) -> str:
    """The request as the judge reads it: the messages (role: text), the prompt or the input."""
    messages = body.get("messages")
    if isinstance(messages, list):
        lines = []
        for message in messages:
            if isinstance(message, dict):
                content = message.get("content")
                text = content if isinstance(content, str) else orjson.dumps(content).decode()
                lines.append(f"{message.get('role', 'user')}: {text}")
        return "\n".join(lines)[:MAX_CHARS]
    for field in ("prompt", "input", "instructions"):
        value = body.get(field)
        if value is not None:
            return (value if isinstance(value, str) else orjson.dumps(value).decode())[:MAX_CHARS]
    return f"(a {endpoint} request)"


def judge_body(model: str, request: str, primary: str, candidate: str) -> dict[str, Any]:
    return {"model": model, "temperature": 0, "messages": [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": f"Request:\n{request}\n\nAnswer A:\n{primary[:MAX_CHARS]}"
                                    f"\n\nAnswer B:\n{candidate[:MAX_CHARS]}"}]}


def parse_score(text: str | None) -> float | None:
    """The first number of the judge's answer, when it is between 0 and 1."""
    if not text:
        return None
    found = _NUMBER.search(text)
    if found is None:
        return None
    score = float(found.group())
    return score if 0.0 <= score <= 1.0 else None
