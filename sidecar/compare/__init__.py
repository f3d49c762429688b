"""One request, several models: compare them side by side (POST /sidecar/compare), and copy live
requests to a candidate model in the background (shadow rules). Both are forks of a Call
(`Call.fork()`) run through a pipeline by an in-process consumer that plays the handler's part
(consume.py), so every finisher (spend's ledger row, the breaker, spans, the inspector) treats
each model's call as it treats a client's.

    consume.py        run a forked Call through a pipeline and read its Reply, as the handler would
    answers.py        an answer's text, JSON object and error, by endpoint
    request.py        the compare request body, checked field by field
    fanout.py         the compare: one fork per model, concurrently, under one deadline
    results.py        one model's result, and the summary that ranks them
    route.py          the aiohttp handler: JSON or server-sent events
    agreement.py      exact match and word-set similarity of two answers
    shadow_plan.py    a shadow rule as the stage uses it: match, sample, the candidate's fork
    shadow_runner.py  the Resource running candidate calls in the background, bounded
    shadow_stats.py   per rule, since start: pairs, costs, latencies, agreement, skips
    judge.py          the optional judge call that scores a pair 0-1
    cli.py            `llm-sidecar compare` and `llm-sidecar shadow`
"""

__all__: list[str] = []
