"""The request inspector: a bounded memory of recent requests, pushed to open pages."""

from sidecar.inspector.hub import Inspector
from sidecar.inspector.records import ContentStore, RequestRecord, record_of
from sidecar.inspector.stats import ModelStats

__all__ = ["ContentStore", "Inspector", "ModelStats", "RequestRecord", "record_of"]
