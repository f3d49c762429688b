"""The answer stage: read the upstream's answer once, for every stage above that needs it.

Right above route (and so inside a cache miss's single flight): each upstream reply gets a
fresh `Answer` record on the Call, filled as the answer passes: a JSON answer parsed once, a
stream watched event by event and never held back (answer.py). Spend, the cache, telemetry,
the inspector, fallback's averages and the access line read `call.answer`; none parses the
answer again. A cache hit never gets here: the cache stage takes the entry's record instead.

Present when a stage in the list says `reads_answer`; with none (a bare proxy) answers pass
untouched. The endpoint's wire (endpoints.py) says how an answer reads: OpenAI's shapes, or
Anthropic's messages and events on /v1/messages (messages/answer.py).
"""

from __future__ import annotations

from sidecar.answer import Reader, observe
from sidecar.call import Answer, Call, Next, Reply
from sidecar.endpoints import Wire, wire_of
from sidecar.messages.answer import note_message

_READERS: dict[Wire, Reader | None] = {"openai": None, "anthropic": note_message}

__all__ = ["ReadAnswer"]


class ReadAnswer:
    name = "answer"
    reads_answer = False  # it writes the record

    async def __call__(self, call: Call, next: Next) -> Reply:
        # A record per run: a fallback candidate that failed leaves nothing to the next one.
        call.answer = answer = Answer()
        return observe(answer, await next(call), _READERS[wire_of(call.endpoint, call.path)])
