"""The local SageMaker's warm model servers (sfn_mlops/local/sagemaker/standby.py): an
endpoint started from a standby runs the real `sfn_container serve` with its own
environment, working directory, log stream and model; a new standby takes its place; a
container Environment that acts at interpreter start gets a server started cold; stopping
the cloud stops the standbys too."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from executions import wait_for

from sfn_mlops.local import procs
from sfn_mlops.local.cloud import LocalCloud

pytestmark = pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="reads /proc")

BUCKET = "standby-models"
ROLE = "arn:aws:iam::123456789012:role/standby"


def wait(predicate: Any, timeout: float = 60.0) -> Any:
    return wait_for(predicate, timeout=timeout, interval=0.05)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, served: dict[str, Any]) -> Iterator[LocalCloud]:
    buf = io.BytesIO()
    model_dir = Path(served["opt_ml"]) / "model"
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    with LocalCloud(workdir=tmp_path_factory.mktemp("standby")) as c:
        c.client("iam").create_role(RoleName="standby", AssumeRolePolicyDocument="{}")
        c.client("s3").create_bucket(Bucket=BUCKET)
        c.client("s3").put_object(Bucket=BUCKET, Key="m/model.tar.gz", Body=buf.getvalue())
        yield c


def _endpoint(cloud: LocalCloud, name: str, environment: dict[str, str]) -> dict[str, Any]:
    sm = cloud.client("sagemaker")
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": "local/sfn-mlops:latest",
            "ModelDataUrl": f"s3://{BUCKET}/m/model.tar.gz",
            "Environment": environment,
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large",
             "InitialInstanceCount": 1},
        ],
    )  # fmt: skip
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    return wait(  # type: ignore[no-any-return]
        lambda: (
            (d := sm.describe_endpoint(EndpointName=name))["EndpointStatus"] != "Creating" and d
        ),
        timeout=60,
    )


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def _predict(cloud: LocalCloud, name: str, sample: bytes) -> str:
    body = b"\n".join(sample.strip().splitlines()[1:3])  # two feature rows, no header
    out = cloud.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=name, Body=body, ContentType="text/csv", Accept="text/csv"
    )
    return str(out["Body"].read().decode())


def _started(cloud: LocalCloud, name: str, environment: dict[str, str]) -> tuple[Any, set[int]]:
    """An endpoint created once both standbys are ready: its server, and the standbys' pids
    before it started."""
    manager = cloud.sagemaker.endpoints
    wait(lambda: len(manager._standbys) == 2, timeout=30)
    standby_pids = {p.pid for p in manager._standbys}
    desc = _endpoint(cloud, name, environment)
    assert desc["EndpointStatus"] == "InService", desc.get("FailureReason")
    return manager.servers[name], standby_pids


def test_an_endpoint_from_a_standby_is_the_real_server_with_its_own_settings(
    cloud: LocalCloud, served: dict[str, Any]
) -> None:
    # GIVEN standbys ready (the cloud keeps them from its start)
    # WHEN an endpoint is created with an environment of its own
    server, standby_pids = _started(
        cloud, "warm", {"TARGET_COLUMN": "target", "SERVE_MAX_BODY_BYTES": "4000"}
    )
    manager = cloud.sagemaker.endpoints
    # THEN it is InService on a standby's process, in the endpoint's working directory, on
    # its port, with its settings (the body limit), its log and the model's predictions
    assert server.proc.pid in standby_pids
    assert Path(os.readlink(f"/proc/{server.proc.pid}/cwd")) == server.workdir
    lines = _predict(cloud, "warm", served["sample"]).strip().splitlines()
    assert len(lines) == 2
    assert all(0.0 <= float(v) <= 1.0 for v in lines)
    with pytest.raises(ClientError) as err:  # over the endpoint's SERVE_MAX_BODY_BYTES
        cloud.client("sagemaker-runtime").invoke_endpoint(
            EndpointName="warm", Body=b"1," * 2500, ContentType="text/csv"
        )
    assert err.value.response.get("OriginalStatusCode") == 413, err.value.response
    wait(
        lambda: "serving binary_classification model" in (server.workdir / "serve.log").read_text()
    )
    # AND a new standby takes the used one's place
    wait(lambda: len(manager._standbys) == 2, timeout=30)
    assert server.proc.pid not in {p.pid for p in manager._standbys}


def test_an_environment_read_at_interpreter_start_gets_a_cold_server(
    cloud: LocalCloud, served: dict[str, Any]
) -> None:
    # WHEN the container's Environment sets what OpenMP reads when it loads
    server, standby_pids = _started(cloud, "cold", {"OMP_NUM_THREADS": "1"})
    # THEN the server was started as a new `python -m sfn_container serve`, not a standby
    assert server.proc.pid not in standby_pids
    assert server.proc.args[-3:] == ["-m", "sfn_container", "serve"]
    assert _environ(server.proc.pid)["OMP_NUM_THREADS"] == "1"
    assert len(_predict(cloud, "cold", served["sample"]).strip().splitlines()) == 2


# Keep this test LAST in the module: it stops the module's cloud.
def test_stopping_the_cloud_stops_the_standbys(cloud: LocalCloud) -> None:
    manager = cloud.sagemaker.endpoints
    wait(lambda: len(manager._standbys) == 2, timeout=30)
    pids = [p.pid for p in manager._standbys] + [s.proc.pid for s in manager.servers.values()]
    cloud.stop()
    wait(lambda: not any(procs.group_alive(pid) for pid in pids), timeout=10)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
