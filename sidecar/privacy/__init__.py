"""Redaction (detectors, redactor, restorer, fields) and zero data retention (zdr, policy).

Nothing here is imported by the proxy core unless privacy is configured, except `zdr`'s small
helpers (providers ask it whether a base URL is OpenRouter's).
"""

__all__: list[str] = []
