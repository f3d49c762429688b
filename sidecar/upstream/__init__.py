"""Everything between the route stage and the providers' sockets.

    client.py       the one pooled aiohttp ClientSession; transport errors mapped to ours
    providers/      how one upstream is asked: OpenAI-compatible, Anthropic (anthropic/ translates)
    routing.py      `Routing`: the providers, their breakers and averages, built once
    targets.py      `Target` (a provider and its state) and the `Router` ordering them per model
    retry.py        which answers are retried, and the backoff; breaker.py: circuit breakers
    averages.py     time to first byte and throughput per provider and model
    preferences.py  OpenRouter's `provider` preferences, applied by the router
    openrouter.py   OpenRouter recognised, and asked for zero data retention
    paths.py        passthrough paths refused; models.py: GET /v1/models merged
    egress.py       egress proxies; clock.py: time and chance; demo.py: the offline demo
"""

__all__: list[str] = []
