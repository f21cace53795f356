"""Bursts of new data start one retraining, and duplicates start nothing (the real trigger
path in one local cloud: S3 -> EventBridge -> the data-events queue -> the trigger, batched
for the local debounce window; the execution-closed rule starts the follow-up).

deploy_mode never: these runs need preprocessing, not an endpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sfn_mlops.history import failure
from sfn_mlops.local.cloud import LocalCloud
from sfn_mlops.local.run import export_dataset
from sfn_mlops.local.stack import Stack, deploy, enable_triggers
from sfn_mlops.progress import get_history
from shared import resources

pytestmark = pytest.mark.integration

TIMEOUT = 240.0


class Data:
    def __init__(self, cloud: LocalCloud, stack: Stack, rows: list[str], header: str) -> None:
        self.cloud, self.stack, self.rows, self.header = cloud, stack, rows, header
        self.sfn = cloud.client("stepfunctions")

    def upload(self, name: str, part: int) -> None:
        body = self.header + "".join(self.rows[part * 20 : part * 20 + 20])
        self.cloud.client("s3").put_object(
            Bucket=self.stack.bucket, Key=f"{resources.DATA_PREFIX}{name}", Body=body.encode()
        )

    def executions(self) -> list[dict[str, Any]]:
        listed = self.sfn.list_executions(stateMachineArn=self.stack.state_machine_arn)
        return sorted(listed["executions"], key=lambda e: e["startDate"])

    def settled(self) -> None:
        """The debounce window passed and the trigger handled what was queued (bounded)."""
        assert self.cloud.queues is not None
        window = resources.data_trigger().local_debounce_seconds
        sqs = self.cloud.client("sqs")
        url = sqs.get_queue_url(QueueName=resources.DATA_EVENTS_QUEUE)["QueueUrl"]

        def empty() -> bool:
            attrs = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            queued = int(attrs["ApproximateNumberOfMessages"]) + int(
                attrs["ApproximateNumberOfMessagesNotVisible"]
            )
            assert self.cloud.queues is not None
            return queued == 0 and self.cloud.queues.idle()

        self.cloud.wait_for(empty, timeout=window + 60, interval=0.2)

    def wait(self, arn: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while (desc := self.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, f"{arn} still RUNNING"
            time.sleep(0.3)
        return desc  # type: ignore[no-any-return]

    def files_read(self, arn: str) -> list[str]:
        """The data files the execution's preprocessing read (its profile)."""
        out = json.loads(self.sfn.describe_execution(executionArn=arn)["output"])
        uri = out["preprocess"]["profile_uri"].rstrip("/") + "/profile.json"
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        body = self.cloud.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        return [Path(name).name for name in json.loads(body)["files"]]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Data]:
    workdir = tmp_path_factory.mktemp("debounce")
    with LocalCloud(workdir=workdir) as cloud:
        stack = deploy(cloud, overrides={"deploy_mode": "never"}, triggers=False)
        seed, batch = export_dataset(workdir / "data")
        cloud.client("s3").upload_file(
            str(seed), stack.bucket, f"{resources.DATA_PREFIX}{seed.name}"
        )
        enable_triggers(cloud, stack)
        header, *rows = batch.read_text().splitlines(keepends=True)
        yield Data(cloud, stack, rows, header)


def test_a_burst_starts_one_run_and_an_upload_during_it_exactly_one_follow_up(data: Data) -> None:
    # GIVEN 10 uploads within the debounce window
    for i in range(10):
        data.upload(f"burst-{i:02d}.csv", i)
    # WHEN the window has passed
    data.settled()
    # THEN one execution started, and its preprocessing read all 10 files
    (first,) = data.executions()
    assert first["name"].startswith("data-batch-10-")
    # ... one more upload while it runs gets no run of its own
    assert data.sfn.describe_execution(executionArn=first["executionArn"])["status"] == "RUNNING"
    data.upload("late.csv", 10)
    data.settled()
    assert len(data.executions()) == 1
    done = data.wait(first["executionArn"])
    assert done["status"] == "SUCCEEDED", failure(get_history(data.sfn, first["executionArn"]))
    read = data.files_read(first["executionArn"])
    assert {f"burst-{i:02d}.csv" for i in range(10)} <= set(read)
    # ... but exactly one follow-up after it, which includes the late upload
    data.cloud.wait_for(lambda: len(data.executions()) == 2, timeout=60, interval=0.2)
    follow_up = data.executions()[1]
    assert follow_up["name"].startswith("data-followup-")
    run = data.wait(follow_up["executionArn"])
    assert run["status"] == "SUCCEEDED", failure(get_history(data.sfn, follow_up["executionArn"]))
    assert "late.csv" in data.files_read(follow_up["executionArn"])
    data.settled()
    assert len(data.executions()) == 2


def test_the_same_s3_event_twice_starts_one_execution_and_says_duplicate(data: Data) -> None:
    # GIVEN an object whose event EventBridge has not delivered yet (the S3 rule is off)
    from sfn_mlops.local.events import s3_object_created_event

    for e in data.executions():
        data.wait(e["executionArn"])
    before = len(data.executions())
    events = data.cloud.client("events")
    events.disable_rule(Name=resources.S3_DATA_RULE)
    try:
        data.upload("direct.csv", 12)
    finally:
        events.enable_rule(Name=resources.S3_DATA_RULE)
    key = f"{resources.DATA_PREFIX}direct.csv"
    obj = data.cloud.client("s3").head_object(Bucket=data.stack.bucket, Key=key)
    event = s3_object_created_event(
        data.stack.account,
        data.stack.region,
        data.stack.bucket,
        key,
        int(obj["ContentLength"]),
        obj["ETag"],
        obj.get("VersionId"),
        "PutObject",
        "0000000000000001",
    )
    lam = data.cloud.client("lambda")
    trigger = resources.FUNCTIONS_BY_KEY["trigger"].function_name
    # WHEN the trigger gets its event twice (at-least-once delivery)
    replies = [
        json.loads(lam.invoke(FunctionName=trigger, Payload=json.dumps(event))["Payload"].read())
        for _ in range(2)
    ]
    # THEN one execution, and the second reply says duplicate
    assert [r["action"] for r in replies] == ["started", "duplicate"]
    assert replies[0]["execution_name"] == replies[1]["execution_name"]
    assert len(data.executions()) == before + 1
