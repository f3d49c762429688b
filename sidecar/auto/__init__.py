"""The automatic model choice behind `model: "sidecar/auto"` (docs/auto.md).

    shapes.py    a request's body read per endpoint shape (chat, completions, responses,
                 messages) into a `Shape`
    classify.py  `Shape` → `Features` (sizes, structure, word cues): pure, well under 1 ms
    tiers.py     `Features` → tier (simple, medium, complex, reasoning), shifted by `prefer`
    router.py    one configured router: tiers, the context-window check, cheaper and next tiers
    pins.py      session pinning: the tier never goes down within a session
    faults.py    which answers the cascade retries one tier up
    choice.py    `AutoChoice`, the decision kept on the Call (headers, ledger, inspector)
    explain.py   `llm-sidecar auto explain`: the tier and why, without calling anything

The stage is sidecar/pipeline/auto.py.
"""

__all__: list[str] = []
