"""Redaction (detectors, checks, redactor, restorer, fields, pseudonyms) and the privacy report
(policy). Nothing here is imported by the proxy core unless redaction is configured.

Zero data retention lives where it acts: the ZDR stage in pipeline/privacy.py, the log rules in
telemetry/withhold.py, OpenRouter's retention policy in upstream/openrouter.py.
"""

__all__: list[str] = []
