"""One admission decision: is this pod injected, and with what patch.

Two webhooks of the chart's MutatingWebhookConfiguration call the injector, each on its own
path, because the API server ANDs a webhook's namespaceSelector and objectSelector and
AdmissionReview carries no namespace labels:

- `/inject` ("pod" mode): pods labelled `llm-sidecar.io/inject: "true"`. The label is checked
  again here, so a webhook pointed at this path without its objectSelector injects nothing
  else.
- `/inject/namespace` ("namespace" mode): pods in namespaces labelled so (the API server's
  namespaceSelector vouches for the namespace; reading its labels here would need RBAC on
  namespaces). Pods labelled or annotated `llm-sidecar.io/inject: "false"` are left alone.

Outcomes: a pod that is not selected, opted out, already injected (the status annotation or
the sidecar container present) or on the host network is admitted unchanged. Invalid
annotations or a volume name the sidecar needs are the pod's fault: denied with a message
naming them. An error of the injector itself admits the pod without the sidecar and a warning
(fail open), or denies it when the injector runs with --fail-closed.
"""

from __future__ import annotations

from typing import Literal

import structlog

from sidecar.inject.annotations import INJECT, INJECTED, STATUS, AnnotationError, read_overrides
from sidecar.inject.patch import Defaults, PodConflict, build_patch
from sidecar.inject.pod import Pod, read_pod
from sidecar.inject.review import AdmissionRequest, Verdict
from sidecar.inject.template import SidecarTemplate

Mode = Literal["pod", "namespace"]
log = structlog.get_logger("sidecar.inject")


def selection(pod: Pod, mode: Mode, sidecar_name: str) -> str | None:
    """Why the pod is left alone, or None when it is to be injected."""
    label, annotation = pod.labels.get(INJECT), pod.annotations.get(INJECT)
    if "false" in (label, annotation):
        return f'opted out ({INJECT}: "false")'
    if mode == "pod" and label != "true":
        return f'not labelled {INJECT}: "true"'
    if pod.annotations.get(STATUS) == INJECTED:
        return f"already injected ({STATUS}: {INJECTED})"
    if sidecar_name in pod.container_names:
        return f"already injected (a container named {sidecar_name})"
    if pod.host_network:
        return "a hostNetwork pod: the sidecar's ports would be the node's"
    return None


class Injector:
    """Decides and patches; holds the template and the flags' defaults, nothing per request."""

    def __init__(self, template: SidecarTemplate, defaults: Defaults, *,
                 fail_closed: bool = False) -> None:
        self.template = template
        self.defaults = defaults
        self.fail_closed = fail_closed

    def review(self, request: AdmissionRequest, mode: Mode) -> Verdict:
        """The verdict on one request. A malformed pod raises ReviewError (the caller's 400)."""
        if not request.is_pod_create:
            what = "/".join(p for p in (request.kind, request.sub_resource) if p)
            return Verdict(allowed=True, reason=f"not a pod creation ({request.operation} {what})")
        pod = read_pod(request.object)
        try:
            return self._admit(pod, mode)
        except (AnnotationError, PodConflict) as exc:
            return Verdict(allowed=False, code=400, outcome="denied", reason="invalid pod",
                           message=f"llm-sidecar injector: {exc}")
        except Exception as exc:
            log.exception("inject_failed", uid=request.uid, namespace=request.namespace,
                          pod=pod.display_name, fail_closed=self.fail_closed)
            note = f"llm-sidecar injector failed ({type(exc).__name__}); see its log"
            if self.fail_closed:
                return Verdict(allowed=False, code=500, outcome="error", reason=note,
                               message=f"{note}; the pod is refused (--fail-closed)")
            return Verdict(allowed=True, outcome="error", reason=note,
                           warnings=(f"{note}; the pod was admitted without the sidecar",))

    def _admit(self, pod: Pod, mode: Mode) -> Verdict:
        skip = selection(pod, mode, self.template.name)
        if skip is not None:  # its annotations are not read: they change nothing
            return Verdict(allowed=True, reason=skip)
        overrides, warnings = read_overrides(pod.annotations)
        patch, more = build_patch(pod, self.template, self.defaults, overrides)
        return Verdict(allowed=True, patch=patch, warnings=(*warnings, *more),
                       outcome="injected", reason=f"selected by {mode} label")
