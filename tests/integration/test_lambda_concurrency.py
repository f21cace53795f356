"""Load as on AWS: the local cloud's Lambda concurrency limit (an account's concurrency
quota). The excess Invoke is throttled with TooManyRequestsException, which the
definition's retrier absorbs (the rendered ASL's Lambda Retry, in the fixture definition of
benchmarks/load.py): a burst of executions started at once all succeed instead of queueing
cold starts past the functions' timeouts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from benchmarks.load import burst_definition
from sfn_mlops.local.cloud import LocalCloud
from sfn_mlops.local.lambda_runtime import FunctionConfig, default_concurrency
from shared import resources

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
ROLE = "arn:aws:iam::123456789012:role/load"
STEPS = ("first", "second", "third")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with LocalCloud(workdir=tmp_path_factory.mktemp("load")) as c:
        c.client("iam").create_role(RoleName="load", AssumeRolePolicyDocument="{}")
        yield c


@pytest.fixture(scope="module")
def machine(cloud: LocalCloud) -> str:
    lam = cloud.client("lambda")
    arns = {}
    for step in (*STEPS, "slow"):
        handler = "fixture_handlers.slow" if step == "slow" else "fixture_handlers.echo"
        arn = lam.create_function(
            FunctionName=f"load-{step}",
            Runtime=resources.LAMBDA_RUNTIME,
            Role=ROLE,
            Handler=handler,
            Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18},
            Timeout=30,
        )["FunctionArn"]
        cloud.register_function(
            FunctionConfig(f"load-{step}", arn, handler, {}, 30, 128, (str(HERE),))
        )
        arns[step] = arn
    return str(
        cloud.client("stepfunctions").create_state_machine(
            name="load",
            definition=burst_definition([arns[s] for s in STEPS], {"n.$": "$.n"}),
            roleArn=ROLE,
        )["stateMachineArn"]
    )


def test_the_limit_is_sized_from_the_machine_and_configurable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SFN_MLOPS_LAMBDA_CONCURRENCY", raising=False)
    assert default_concurrency() >= 5
    monkeypatch.setenv("SFN_MLOPS_LAMBDA_CONCURRENCY", "3")
    assert default_concurrency() == 3
    monkeypatch.setenv("SFN_MLOPS_LAMBDA_CONCURRENCY", "zero")
    with pytest.raises(ValueError, match="SFN_MLOPS_LAMBDA_CONCURRENCY"):
        default_concurrency()


def test_invoke_beyond_the_limit_is_throttled_with_429(cloud: LocalCloud, machine: str) -> None:
    limit = cloud.lambdas.concurrency
    cloud.lambdas.concurrency = 1
    lam = cloud.client("lambda")
    try:
        busy = threading.Thread(
            target=lambda: lam.invoke(FunctionName="load-slow", Payload=b'{"seconds": 3}')
        )
        busy.start()
        deadline = time.monotonic() + 30
        while cloud.lambdas.in_flight < 1:
            assert time.monotonic() < deadline, "the slow invoke never started"
            time.sleep(0.02)
        with pytest.raises(ClientError) as err:
            cloud.client("lambda").invoke(FunctionName="load-first", Payload=b"{}")
        busy.join(timeout=30)
    finally:
        cloud.lambdas.concurrency = limit
    assert err.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert "concurrency limit of 1" in err.value.response["Error"]["Message"]


def test_idle_warm_workers_do_not_count_against_the_limit(cloud: LocalCloud, machine: str) -> None:
    """More functions than the limit: each keeps the warm worker it was given (as on AWS,
    the limit bounds running invocations, not warm environments), so invoking them in turn
    runs each in its warm worker instead of retiring another function's to cold-start."""
    names = [f"load-{step}" for step in (*STEPS, "slow")]
    limit = cloud.lambdas.concurrency
    cloud.lambdas.concurrency = 2  # fewer than the functions
    lam = cloud.client("lambda")
    try:
        for name in names:
            if not cloud.lambdas.idle_pids(name):
                cloud.lambdas.warm(name)
        assert cloud.lambdas.wait_warm()
        warm = {name: cloud.lambdas.idle_pids(name) for name in names}
        assert all(warm.values()), warm
        for name in names:
            payload = b'{"seconds": 0}' if name == "load-slow" else b"{}"
            assert "FunctionError" not in lam.invoke(FunctionName=name, Payload=payload)
        assert {name: cloud.lambdas.idle_pids(name) for name in names} == warm
        assert cloud.lambdas.worker_count <= cloud.lambdas.max_workers
    finally:
        cloud.lambdas.concurrency = limit


@pytest.mark.parametrize("executions", [40, 100])
def test_executions_started_at_once_all_succeed(
    cloud: LocalCloud, machine: str, executions: int
) -> None:
    sfn = cloud.client("stepfunctions")

    def start(i: int) -> str:
        return str(
            cloud.client("stepfunctions").start_execution(
                stateMachineArn=machine, name=f"burst-{executions}-{i}", input=json.dumps({"n": i})
            )["executionArn"]
        )

    with ThreadPoolExecutor(max_workers=min(executions, 50)) as pool:
        arns = list(pool.map(start, range(executions)))
    deadline = time.monotonic() + 600
    statuses: dict[str, str] = {}
    while True:
        statuses = {a: sfn.describe_execution(executionArn=a)["status"] for a in arns}
        if "RUNNING" not in statuses.values():
            break
        assert time.monotonic() < deadline, f"{list(statuses.values()).count('RUNNING')} RUNNING"
        assert cloud.lambdas.in_flight <= cloud.lambdas.concurrency
        assert cloud.lambdas.worker_count <= cloud.lambdas.max_workers
        time.sleep(0.5)
    failed = {a: s for a, s in statuses.items() if s != "SUCCEEDED"}
    assert not failed, failed
    outputs = [json.loads(sfn.describe_execution(executionArn=a)["output"]) for a in arns]
    assert sorted(o["n"] for o in outputs) == list(range(executions))
