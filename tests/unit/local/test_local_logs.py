"""LocalLogs (the local cloud's CloudWatch Logs writer): lines land in order under their
group and stream, several in one PutLogEvents, and a reset of moto's backends (a new local
cloud in the same process) is honoured: the group is created again, not written to the
forgotten backend."""

from __future__ import annotations

from moto import mock_aws
from moto.core.base_backend import BackendDict
from moto.logs.models import logs_backends

from sfn_mlops.local.logs import LocalLogs

ACCOUNT, REGION = "123456789012", "us-east-1"


def _messages(group: str, stream: str) -> list[str]:
    events = logs_backends[ACCOUNT][REGION].groups[group].streams[stream].events
    return [e.message for e in events]


@mock_aws
def test_lines_are_logged_in_order_and_several_at_once() -> None:
    logs = LocalLogs(ACCOUNT, REGION)

    logs.put("/aws/lambda/f", "s", "START RequestId: 1")
    logs.put_many("/aws/lambda/f", "s", ["END RequestId: 1", "REPORT RequestId: 1"])

    assert _messages("/aws/lambda/f", "s") == [
        "START RequestId: 1",
        "END RequestId: 1",
        "REPORT RequestId: 1",
    ]


@mock_aws
def test_a_reset_of_the_backends_is_honoured() -> None:
    logs = LocalLogs(ACCOUNT, REGION)
    logs.put("/aws/lambda/f", "s", "before")
    old = logs_backends[ACCOUNT][REGION]

    BackendDict.reset()  # what moto's /moto-api/reset does
    logs.put("/aws/lambda/f", "s", "after")

    assert logs_backends[ACCOUNT][REGION] is not old
    assert _messages("/aws/lambda/f", "s") == ["after"]
