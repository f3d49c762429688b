"""Retry policy: what is retryable, the jittered backoff, and Retry-After in both forms."""

from __future__ import annotations

import email.utils

import pytest
from multidict import CIMultiDict

from sidecar.call import Reply
from sidecar.config.providers import RetrySettings
from sidecar.errors import NoProviderAvailable, UpstreamTimeout
from sidecar.upstream.retry import RetryPolicy, retry_after

NOW = 1_800_000_000.0


@pytest.mark.parametrize(("value", "expected"), [
    ("7", 7.0),
    (" 0 ", 0.0),
    (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
    (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),  # in the past: now
    (email.utils.formatdate(NOW + 5), 5.0),  # "-0000" zone
    ("-5", None),
    ("soon", None),
    ("", None),
])
def test_retry_after_forms(value: str, expected: float | None) -> None:
    """Delta-seconds and HTTP dates are read; anything else is ignored."""
    assert retry_after(CIMultiDict({"Retry-After": value}), now=NOW) == expected


def test_backoff_is_capped_full_jitter() -> None:
    """The wait is uniform under min(max_backoff_s, backoff_s · 2^(n-1))."""
    policy = RetryPolicy(RetrySettings(backoff_s=0.5, max_backoff_s=3))
    assert [policy.backoff(n, lambda: 0.999999) for n in (1, 2, 3, 4, 9)] == pytest.approx(
        [0.5, 1.0, 2.0, 3.0, 3.0], rel=1e-5)
    assert policy.backoff(3, lambda: 0.0) == 0.0


def test_what_is_retryable() -> None:
    """Transport errors and on_status statuses are; a 400 or a local error is not; retry off
    means one attempt."""
    policy = RetryPolicy(RetrySettings())
    assert policy.retryable(Reply.from_error(UpstreamTimeout("slow.")))
    assert policy.retryable(Reply(503, CIMultiDict(), body=b""))
    assert not policy.retryable(Reply(400, CIMultiDict(), body=b""))
    assert not policy.retryable(Reply.from_error(NoProviderAvailable("none.")))
    assert RetryPolicy(RetrySettings(attempts=4), enabled=False).attempts == 1
