"""AdmissionReview v1 read strictly (every bad input a ReviewError naming the field) and the
response the API server expects back."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from sidecar.inject.pod import read_pod
from sidecar.inject.review import ReviewError, Verdict, parse_review, review_response
from tests.unit.inject.pods import deployment_pod, review


def body(value: Any) -> bytes:
    return orjson.dumps(value)


def with_request(**changes: Any) -> bytes:
    document = review(deployment_pod())
    for key, value in changes.items():
        if value is None:
            document["request"].pop(key, None)
        else:
            document["request"][key] = value
    return body(document)


def test_a_real_review_is_read() -> None:
    """uid, kind, operation, namespace, dryRun and the object are read from a real review."""
    request = parse_review(body(review(deployment_pod())))
    assert request.uid == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert (request.group, request.version, request.kind) == ("", "v1", "Pod")
    assert request.operation == "CREATE" and request.is_pod_create
    assert request.namespace == "team-a" and request.dry_run is False
    assert request.object == deployment_pod()


@pytest.mark.parametrize(("raw", "expected"), [
    (b"{not json", "the body is not JSON"),
    (body([1, 2]), "must be a JSON object (an AdmissionReview), not an array"),
    (body({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
           "request": {}}), "admissionReviewVersions: [v1]"),
    (body({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
     "request must be an object, but it is missing"),
    (with_request(uid=None), "request.uid must be a string, but it is missing"),
    (with_request(uid=""), "request.uid is empty"),
    (with_request(uid=7), "request.uid must be a string, not a number"),
    (with_request(kind="Pod"), "request.kind must be an object, not a string"),
    (with_request(kind={"group": "", "version": "v1"}), "request.kind.kind must be a string"),
    (with_request(operation=None), "request.operation must be a string"),
    (with_request(object=None), "request.object is missing from a CREATE request"),
    (with_request(object=[1]), "request.object must be an object, not an array"),
    (with_request(dryRun="no"), "request.dryRun must be a boolean"),
], ids=["not-json", "array", "v1beta1", "no-request", "no-uid", "empty-uid", "uid-number",
        "kind-string", "kind-without-kind", "no-operation", "create-without-object",
        "object-array", "dry-run-string"])
def test_bad_reviews_are_refused_naming_the_problem(raw: bytes, expected: str) -> None:
    """Each malformed review raises ReviewError with a message naming what is wrong."""
    with pytest.raises(ReviewError) as caught:
        parse_review(raw)
    assert expected in str(caught.value)


def patch_of_pod(change: Any) -> dict[str, Any]:
    pod = deployment_pod()
    change(pod)
    return pod


@pytest.mark.parametrize(("pod", "expected"), [
    (patch_of_pod(lambda p: p.pop("spec")), "request.object.spec must be an object"),
    (patch_of_pod(lambda p: p["spec"].update(containers=[])), "spec.containers is empty"),
    (patch_of_pod(lambda p: p["spec"].update(containers=[{"image": "x"}])),
     "spec.containers must be a list of objects with a name"),
    (patch_of_pod(lambda p: p["metadata"].update(labels={"a": 1})),
     "metadata.labels must map strings to strings"),
    (patch_of_pod(lambda p: p["spec"].update(volumes={"name": "x"})),
     "spec.volumes must be a list"),
    (patch_of_pod(lambda p: p["spec"]["containers"][0].update(env={"A": "1"})),
     "containers['chat'].env must be a list of objects"),
    (patch_of_pod(lambda p: p["spec"].update(hostNetwork="yes")), "hostNetwork must be a bool"),
    (patch_of_pod(lambda p: p.update(kind="Service")), "is a 'Service', not a Pod"),
], ids=["no-spec", "no-containers", "nameless-container", "label-number", "volumes-object",
        "env-object", "host-network-string", "not-a-pod"])
def test_malformed_pods_are_refused_naming_the_field(pod: dict[str, Any], expected: str) -> None:
    """A pod of the wrong shape raises ReviewError naming the field (a 400, not a crash)."""
    with pytest.raises(ReviewError) as caught:
        read_pod(pod)
    assert expected in str(caught.value)


def test_an_allowed_patch_is_base64_json_with_its_type() -> None:
    """allowed + patch: patchType JSONPatch and the base64 of the JSON operations, uid echoed."""
    ops = [{"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}]
    answer = review_response("u-1", Verdict(allowed=True, patch=ops, warnings=("w",)))
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == "u-1" and response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert orjson.loads(base64.b64decode(response["patch"])) == ops
    assert response["warnings"] == ["w"]
    assert "status" not in response


def test_a_denial_carries_its_code_and_message_and_no_patch() -> None:
    """allowed false: a status with code and message, no patch fields."""
    response = review_response("u-2", Verdict(allowed=False, code=400, message="bad"))["response"]
    assert response == {"uid": "u-2", "allowed": False,
                        "status": {"code": 400, "message": "bad"}}
