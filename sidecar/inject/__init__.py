"""`llm-sidecar inject`: the Kubernetes mutating admission webhook that adds the sidecar to pods.

    review.py       AdmissionReview v1 in (strictly read) and out
    pod.py          the parts of a Pod the injector reads, shape-checked
    annotations.py  the label, the per-pod override annotations and their validation
    template.py     the sidecar container and volumes to add (rendered by the Helm chart)
    patch.py        the RFC 6902 JSON patch
    admission.py    one decision: selected or not, patch, deny, or fail open
    server.py       the HTTPS server (aiohttp), certificate reloading
    command.py      the CLI flags and the serve loop
"""

from __future__ import annotations

__all__: list[str] = []  # import the modules themselves: the CLI imports command.py alone
