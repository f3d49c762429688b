"""Which passthrough paths cost money: the decision spend takes for every `/v1` path that is not
a model endpoint (those are priced by the spend stage itself).

    free      reads and deletions (GET, HEAD, OPTIONS, DELETE), and the writes that only store
              or cancel: file uploads (`/files`, `/uploads…`), `…/cancel`, stored-object
              metadata (`/chat/completions/{id}`, `/responses/{id}`), token counting
              (`/responses/input_tokens`), conversations, assistants, threads and their
              messages, the organization admin API (`/organization/…`); plus
              `spend.free_paths` (globs the operator knows to be free)
    batch     `POST /batches`: bounded at submission (pipeline/spend_paths.py)
    unpriced  every other write (fine-tuning jobs, runs, vector stores, videos, containers,
              evals, …) and anything under `/realtime`: money the sidecar cannot price, so
              `spend.unpriced_paths` decides (block, record, allow)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from sidecar.globs import Globs

__all__ = ["PathKind", "PathRules"]

PathKind = Literal["free", "batch", "unpriced"]
_READS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
# Writes that store or cancel (no model runs); `*` crosses `/`, as in every glob here.
FREE_WRITES = ("/files", "/uploads", "/uploads/*", "*/cancel", "/chat/completions/*",
               "/responses/input_tokens", "/conversations", "/conversations/*", "/assistants",
               "/assistants/*", "/threads", "/threads/*/messages", "/threads/*/messages/*",
               # the organization admin API (projects, users, service accounts, keys, spend
               # alerts, certificates): configuration, no model runs
               "/organization/*")


class PathRules:
    def __init__(self, free_paths: Sequence[str] = ()) -> None:
        self._free = Globs([*FREE_WRITES, *free_paths])
        self._operator = Globs(list(free_paths)) if free_paths else None

    def kind(self, method: str, path: str) -> PathKind:
        """`path`: what follows /v1, query included."""
        path = path.partition("?")[0].rstrip("/") or "/"
        if self._operator is not None and self._operator.match(path):
            return "free"
        if path == "/realtime" or path.startswith("/realtime/"):
            return "unpriced"  # a session: billed by the Realtime relay, not here
        if method in _READS:
            return "free"
        if method == "POST" and path == "/batches":
            return "batch"
        if self._free.match(path):
            return "free"
        return "unpriced"
