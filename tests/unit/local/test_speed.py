"""speed.py's memo of moto's BaseResponse._get_action: one routing per request, and a new
answer when what it reads changes (moto's S3 responses set the querystring's Action in
place as they go)."""

from __future__ import annotations

from typing import Any

from sfn_mlops.local.speed import _memo_action


class _Response:
    def __init__(self) -> None:
        self.normalized_request = object()
        self.querystring: dict[str, Any] = {}
        self.headers: dict[str, str] = {}
        self.routed = 0

    def route(self) -> str:
        self.routed += 1
        action = self.querystring.get("Action")
        return str(action[0] if isinstance(action, list) else action or "Routed")


_get_action = _memo_action(_Response.route)


def test_the_action_is_routed_once_per_request() -> None:
    resp = _Response()

    assert [_get_action(resp) for _ in range(3)] == ["Routed"] * 3
    assert resp.routed == 1


def test_an_action_set_in_place_is_a_new_answer() -> None:
    resp = _Response()
    resp.querystring["Action"] = "ListBucket"  # what S3's IAM check sets ...
    assert _get_action(resp) == "ListBucket"

    resp.querystring["Action"] = "ListObjectsV2"  # ... then its handler
    assert _get_action(resp) == "ListObjectsV2"
    assert resp.routed == 2


def test_a_new_request_or_target_header_is_routed_again() -> None:
    resp = _Response()
    _get_action(resp)
    resp.normalized_request = object()
    _get_action(resp)
    resp.headers["X-Amz-Target"] = "Service.Operation"
    _get_action(resp)

    assert resp.routed == 3


def test_error_responses_share_one_error_table_per_service() -> None:
    from moto.core import errors
    from moto.core.utils import get_service_model
    from moto.sagemaker.exceptions import ValidationError

    from sfn_mlops.local import speed
    from sfn_mlops.local.cloud import _Patches

    # GIVEN moto's error-shape look-up, with the local cloud's speed-ups installed
    patches = _Patches()
    speed.install(patches)
    try:
        model = get_service_model("sagemaker")
        first = errors.get_error_model(ValidationError("bad"), model)
        # WHEN a second error response of the service looks its shape up
        table = errors.ErrorLookupFactory().for_service(model)
        # THEN it gets the same answer from the one table built for the service
        assert errors.get_error_model(ValidationError("again"), model).name == first.name
        assert errors.ErrorLookupFactory().for_service(model) is table
    finally:
        patches.undo()
    assert errors.ErrorLookupFactory() is not errors.ErrorLookupFactory()  # moto's own again
