"""One deployment per endpoint at a time, decided against the champion serving then (the
real pipeline in one local cloud): concurrent deploy-worthy executions, and a lock whose
owner was stopped.

One cloud for the module; the tests run in file order and share the endpoint.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sfn_mlops.history import failure
from sfn_mlops.local.cloud import LocalCloud
from sfn_mlops.local.run import export_dataset
from sfn_mlops.local.stack import Stack, deploy
from sfn_mlops.progress import get_history
from shared import resources

pytestmark = pytest.mark.integration

TIMEOUT = 300.0
#: A single depth-1 stump: a clearly weaker model than the defaults (30 rounds, depth 4),
#: still above the 0.80 AUC threshold on the test split.
WEAK = {"hyperparameters": {"num_round": 1, "max_depth": 1}}
STRONG: dict[str, Any] = {}
#: Each test deploys to its own endpoint (its own champion and lock): the stack is deployed
#: with both as its endpoints (a payload may name only those), and each run goes straight
#: to its one (no staging stage).
ENDPOINTS = {"endpoint_name": "race-endpoint", "staging_endpoint_name": "reclaim-endpoint"}
RACE = {"endpoint_name": "race-endpoint", "staging_endpoint_name": None}
RECLAIM = {"endpoint_name": "reclaim-endpoint", "staging_endpoint_name": None}


class Cloud:
    def __init__(self, cloud: LocalCloud, stack: Stack) -> None:
        self.cloud, self.stack = cloud, stack
        self.sfn = cloud.client("stepfunctions")

    def start(self, payload: dict[str, Any], label: str) -> str:
        return str(
            self.sfn.start_execution(
                stateMachineArn=self.stack.state_machine_arn,
                name=f"{label}-{uuid.uuid4().hex[:8]}",
                input=json.dumps(payload),
            )["executionArn"]
        )

    def wait(self, arn: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while (desc := self.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, f"{arn} still RUNNING"
            time.sleep(0.3)
        return desc  # type: ignore[no-any-return]

    def entered(self, arn: str) -> list[str]:
        return [
            e["stateEnteredEventDetails"]["name"]
            for e in get_history(self.sfn, arn)
            if "stateEnteredEventDetails" in e
        ]

    def lock_owner(self, endpoint: str) -> str | None:
        item = self.cloud.client("dynamodb").get_item(
            TableName=resources.COORDINATION_TABLE, Key={"pk": {"S": f"lock#endpoint#{endpoint}"}}
        )
        return item.get("Item", {}).get("owner", {}).get("S")

    def serving_model(self, endpoint_name: str) -> str:
        sm = self.cloud.client("sagemaker")
        endpoint = sm.describe_endpoint(EndpointName=endpoint_name)
        assert endpoint["EndpointStatus"] == "InService", endpoint
        config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        model = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
        return str(model["PrimaryContainer"]["ModelDataUrl"])


def busy_refusals(cloud: Cloud, arn: str) -> int:
    """UpdateEndpoint attempts refused because the endpoint was busy (TransientServiceError)."""
    refused = [
        e["taskFailedEventDetails"]
        for e in get_history(cloud.sfn, arn)
        if e["type"] == "TaskFailed"
        and e["taskFailedEventDetails"].get("error") == "TransientServiceError"
    ]
    return sum(1 for d in refused if "(another update)" in d.get("cause", ""))


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    workdir = tmp_path_factory.mktemp("lock")
    with LocalCloud(workdir=workdir) as local:
        stack = deploy(local, overrides=ENDPOINTS, triggers=False)
        seed, _ = export_dataset(workdir / "data")
        local.client("s3").upload_file(
            str(seed), stack.bucket, f"{resources.DATA_PREFIX}{seed.name}"
        )
        from sfn_mlops.local.stack import enable_triggers

        enable_triggers(local, stack)
        yield Cloud(local, stack)


def test_two_deploy_worthy_executions_end_on_the_better_model(cloud: Cloud) -> None:
    # GIVEN no champion, and two executions started together whose models differ
    arns: dict[str, str] = {}

    def start(label: str, payload: dict[str, Any]) -> None:
        arns[label] = cloud.start(payload, label)

    threads = [
        threading.Thread(target=start, args=(label, payload | RACE))
        for label, payload in (("weak", WEAK), ("strong", STRONG))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # WHEN both finish
    runs = {label: cloud.wait(arn) for label, arn in arns.items()}
    # THEN both succeed, and the endpoint serves the better (strong) model
    for label, run in runs.items():
        assert run["status"] == "SUCCEEDED", (label, failure(get_history(cloud.sfn, arns[label])))
    out = {label: json.loads(run["output"]) for label, run in runs.items()}
    assert out["strong"]["gate"]["challenger"] > out["weak"]["gate"]["challenger"]
    assert (
        cloud.serving_model(RACE["endpoint_name"]) == out["strong"]["train"]["model_artifact_uri"]
    )
    # ... the one that took the lock second was compared again with the newer champion
    second = max(out, key=lambda k: cloud.entered(arns[k]).count("WaitForDeployLock"))
    assert out[second]["recheck"]["changed"] is True
    assert "compared again with the newer champion" in out[second]["gate"]["reasons"][0]
    if second == "weak":  # ... and says why it did not deploy: the newer champion is better
        assert out["weak"]["gate"]["deploy"] is False
        assert out["weak"]["register"]["approval_status"] == "Rejected"
        assert any("champion not beaten" in r for r in out["weak"]["gate"]["reasons"])
        assert "UpdateEndpoint" not in cloud.entered(arns["weak"])
    # ... UpdateEndpoint was never refused as busy, and the lock is free again
    assert sum(busy_refusals(cloud, arn) for arn in arns.values()) == 0
    assert cloud.lock_owner(RACE["endpoint_name"]) is None


def test_a_lock_held_by_a_stopped_execution_is_reclaimed(cloud: Cloud) -> None:
    # GIVEN the execution-closed rule is off (so only the reclaim can free the lock), and an
    # execution that holds the lock is stopped with StopExecution
    events = cloud.cloud.client("events")
    events.disable_rule(Name=resources.EXECUTION_CLOSED_RULE)
    try:
        endpoint = RECLAIM["endpoint_name"]
        holder = cloud.start(WEAK | RECLAIM, "holder")
        cloud.cloud.wait_for(
            lambda: cloud.lock_owner(endpoint) == holder, timeout=TIMEOUT, interval=0.2
        )
        cloud.sfn.stop_execution(executionArn=holder, error="Test", cause="stopped on purpose")
        assert cloud.wait(holder)["status"] == "ABORTED"
        assert cloud.lock_owner(endpoint) == holder  # nothing released it
        # WHEN the next deploy-worthy execution (better than the stopped one's) deploys
        nxt = cloud.start(STRONG | RECLAIM, "next")
        run = cloud.wait(nxt)
    finally:
        events.enable_rule(Name=resources.EXECUTION_CLOSED_RULE)
    # THEN it reclaimed the lock from the stopped owner, and its decision went ahead
    assert run["status"] == "SUCCEEDED", failure(get_history(cloud.sfn, nxt))
    out = json.loads(run["output"])
    assert out["lock"]["reclaimed_from"] == holder
    assert out["gate"]["deploy"] is True
    assert cloud.lock_owner(RECLAIM["endpoint_name"]) is None
    assert "ReleaseDeployLock" in cloud.entered(nxt)
