"""Which passthrough paths are free, a batch, or unpriced."""

from __future__ import annotations

import pytest

from sidecar.spend.paths import PathRules


@pytest.mark.parametrize(("method", "path", "kind"), [
    ("GET", "/files", "free"), ("DELETE", "/files/file-1", "free"),
    ("POST", "/files", "free"), ("POST", "/uploads/up_1/parts", "free"),
    ("POST", "/batches/batch_1/cancel", "free"), ("POST", "/responses/input_tokens", "free"),
    ("POST", "/threads/t_1/messages", "free"), ("POST", "/batches", "batch"),
    ("POST", "/batches?x=1", "batch"), ("POST", "/fine_tuning/jobs", "unpriced"),
    ("POST", "/threads/t_1/runs", "unpriced"), ("POST", "/vector_stores", "unpriced"),
    ("PATCH", "/videos/v1", "unpriced"), ("GET", "/realtime", "unpriced"),
    ("POST", "/realtime/client_secrets", "unpriced"),
])
def test_kinds(method: str, path: str, kind: str) -> None:
    """Reads, deletions, uploads, cancels and bookkeeping are free; a batch is a batch; every
    other write, and the Realtime API, is unpriced."""
    assert PathRules().kind(method, path) == kind


def test_the_operators_free_paths_win() -> None:
    """spend.free_paths makes a path free, whatever its method."""
    rules = PathRules(["/vector_stores*"])
    assert rules.kind("POST", "/vector_stores/vs_1/files") == "free"
    assert rules.kind("POST", "/fine_tuning/jobs") == "unpriced"
