"""moto's ASL interpreter gets one boto3 client per (region, service, endpoint) for its
Tasks (sfn.install_task_clients) instead of a new one for each Task it runs."""

from __future__ import annotations

from typing import Any

import pytest
from moto.core.models import botocore_stubber
from moto.settings import moto_server_port
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.utils import boto_client

from sfn_mlops.local.cloud import _Patches
from sfn_mlops.local.sfn import install_task_clients


def test_tasks_share_one_client_per_service_and_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN moto's client factory (counted), imported by name where Lambda Tasks use it
    made: list[tuple[str, str, str]] = []

    def factory(region: str, service: str, state_credentials: Any = None) -> object:
        made.append((region, service, moto_server_port()))
        return object()

    monkeypatch.setattr(boto_client, "boto_client_for", factory)
    monkeypatch.setattr(lambda_eval_utils, "boto_client_for", factory)
    monkeypatch.setattr(botocore_stubber, "enabled", False)  # server mode
    monkeypatch.setenv("MOTO_PORT", "5111")
    patches = _Patches()
    # WHEN the cache is installed with Lambda's client made ahead
    install_task_clients(patches, warm=(("us-east-1", "lambda"),))
    try:
        first = lambda_eval_utils.boto_client_for("us-east-1", "lambda")
        # THEN every Lambda Task gets that client; another service or endpoint its own
        assert lambda_eval_utils.boto_client_for("us-east-1", "lambda", object()) is first
        assert boto_client.boto_client_for("us-east-1", "lambda") is first
        assert lambda_eval_utils.boto_client_for("us-east-1", "sns") is not first
        monkeypatch.setenv("MOTO_PORT", "5222")  # another cloud's server
        assert lambda_eval_utils.boto_client_for("us-east-1", "lambda") is not first
        assert made == [
            ("us-east-1", "lambda", "5111"),
            ("us-east-1", "sns", "5111"),
            ("us-east-1", "lambda", "5222"),
        ]
    finally:
        patches.undo()
    # AND stopping the cloud puts moto's own factory back
    assert lambda_eval_utils.boto_client_for is factory
