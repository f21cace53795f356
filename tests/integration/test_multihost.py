"""Multi-host jobs in the local cloud: N host processes with their own resourceconfig.json
on loopback — sharded preprocessing, real distributed XGBoost (2 and 3 hosts) whose model
serves, and a Spot interruption that restarts the job from its synced checkpoints."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from executions import wait_for

from sfn_mlops.local.cloud import LocalCloud

pytestmark = pytest.mark.integration

BUCKET = "hosts-bucket"
ROLE = "arn:aws:iam::123456789012:role/hosts"
OUTPUTS = ("train", "validation", "test", "profile", "sample")


def wait(predicate: Any, timeout: float = 180.0, interval: float = 0.05) -> Any:
    return wait_for(predicate, timeout, interval)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    from sfn_container.data import synthetic_arrays

    workdir = tmp_path_factory.mktemp("hosts")
    with LocalCloud(workdir=workdir) as c:
        c.client("iam").create_role(RoleName="hosts", AssumeRolePolicyDocument="{}")
        s3 = c.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        x, y = synthetic_arrays(6000, 6, "binary_classification", seed=5)
        header = ",".join([f"f{i}" for i in range(6)] + ["target"]) + "\n"
        for i, rows in enumerate(np.array_split(np.column_stack([x, y]), 4)):  # 4 objects
            body = header + "".join(",".join(f"{v:.4f}" for v in row) + "\n" for row in rows)
            s3.put_object(Bucket=BUCKET, Key=f"raw/part-{i}.csv", Body=body.encode())
        yield c


def _settled(describe: Any, key: str) -> dict[str, Any]:
    return wait(  # type: ignore[no-any-return]
        lambda: (d := describe())[key] not in ("InProgress", "Stopping") and d
    )


def _preprocess(cloud: LocalCloud, name: str, hosts: int, parts: int) -> dict[str, Any]:
    sm = cloud.client("sagemaker")
    sm.create_processing_job(
        ProcessingJobName=name,
        RoleArn=ROLE,
        AppSpecification={
            "ImageUri": "local/sfn-mlops:latest",
            "ContainerEntrypoint": ["python3", "-m", "sfn_container", "preprocess"],
        },
        ProcessingResources={
            "ClusterConfig": {
                "InstanceCount": hosts,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 1,
            }
        },
        ProcessingInputs=[
            {
                "InputName": "raw",
                "S3Input": {
                    "S3Uri": f"s3://{BUCKET}/raw/",
                    "LocalPath": "/opt/ml/processing/input/raw",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "ShardedByS3Key" if hosts > 1 else "FullyReplicated",
                },
            }
        ],
        ProcessingOutputConfig={
            "Outputs": [
                {
                    "OutputName": out,
                    "S3Output": {
                        "S3Uri": f"s3://{BUCKET}/{name}/{out}",
                        "LocalPath": f"/opt/ml/processing/output/{out}",
                        "S3UploadMode": "EndOfJob",
                    },
                }
                for out in OUTPUTS
            ]
        },
        Environment={"TARGET_COLUMN": "target", "SPLIT_PARTS": str(parts)},
        StoppingCondition={"MaxRuntimeInSeconds": 300},
    )
    return _settled(
        lambda: sm.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus"
    )


def _rows(cloud: LocalCloud, prefix: str) -> list[str]:
    """Every row of the Parquet split files under `prefix`, as CSV lines (columns in the
    files' order, the target last), sorted."""
    import pyarrow.parquet as pq

    s3 = cloud.client("s3")
    rows: list[str] = []
    for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]:
        if obj["Key"].endswith(".parquet"):
            body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
            table = pq.read_table(io.BytesIO(body))
            columns = [c.to_pylist() for c in table.columns]
            rows.extend(
                ",".join("" if v is None else repr(v) for v in row)
                for row in zip(*columns, strict=True)
            )
    return sorted(rows)


@pytest.fixture(scope="module")
def sharded(cloud: LocalCloud) -> str:
    """A 2-host preprocessing job writing 3 parts per split (for up to 3 training hosts)."""
    job = _preprocess(cloud, "pre-2hosts", hosts=2, parts=3)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    return "pre-2hosts"


def test_two_host_preprocessing_keeps_the_one_host_split(cloud: LocalCloud, sharded: str) -> None:
    # Given the same raw objects preprocessed on one host
    single = _preprocess(cloud, "pre-1host", hosts=1, parts=1)
    assert single["ProcessingJobStatus"] == "Completed", single.get("FailureReason")
    # Then every split of the 2-host job holds exactly the one-host rows
    for split in ("train", "validation", "test"):
        assert _rows(cloud, f"{sharded}/{split}/") == _rows(cloud, f"pre-1host/{split}/")
    # And each host wrote its own files under its own prefix (nothing overwritten)
    keys = [
        o["Key"]
        for o in cloud.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"{sharded}/")["Contents"]
    ]
    assert {k.split("/")[2] for k in keys if k.startswith(f"{sharded}/train/")} == {
        "algo-1",
        "algo-2",
    }
    assert sum(k.endswith("profile.json") for k in keys) == 2
    # And each host saw its own resourceconfig.json
    job_dir = cloud.sagemaker.jobs["pre-2hosts"].workdir
    seen = [
        json.loads((job_dir / h / "opt_ml" / "config" / "resourceconfig.json").read_text())
        for h in ("algo-1", "algo-2")
    ]
    assert [s["current_host"] for s in seen] == ["algo-1", "algo-2"]
    assert {tuple(s["hosts"]) for s in seen} == {("algo-1", "algo-2")}


def _training(
    name: str, pre: str, hosts: int, hyperparameters: dict[str, str], **extra: Any
) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {
            "TrainingImage": "local/sfn-mlops:latest",
            "TrainingInputMode": "File",
        },
        "HyperParameters": {"target_column": "target", **hyperparameters},
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{BUCKET}/{pre}/{channel}",
                        "S3DataDistributionType": "ShardedByS3Key",
                    }
                },
            }
            for channel in ("train", "validation")
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models"},
        "ResourceConfig": {
            "InstanceType": "ml.m5.large",
            "InstanceCount": hosts,
            "VolumeSizeInGB": 1,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
        **extra,
    }


def _train(cloud: LocalCloud, request: dict[str, Any]) -> dict[str, Any]:
    sm = cloud.client("sagemaker")
    sm.create_training_job(**request)
    name = request["TrainingJobName"]
    return _settled(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")


def _serve_and_predict(cloud: LocalCloud, name: str, model_url: str, pre: str) -> list[float]:
    sm = cloud.client("sagemaker")
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "local/sfn-mlops:latest", "ModelDataUrl": model_url},
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    endpoint = wait(
        lambda: (
            (d := sm.describe_endpoint(EndpointName=name))["EndpointStatus"] != "Creating" and d
        ),
        timeout=120,
    )
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
    rows = _rows(cloud, f"{pre}/test/")[:3]
    body = "\n".join(",".join(r.split(",")[:-1]) for r in rows)  # features only
    out = cloud.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=name, ContentType="text/csv", Accept="application/json", Body=body
    )
    data = json.loads(out["Body"].read())
    sm.delete_endpoint(EndpointName=name)
    return list(data["predictions"] if isinstance(data, dict) else data)


def _model_metadata(cloud: LocalCloud, model_url: str) -> dict[str, Any]:
    import tarfile

    key = model_url.removeprefix(f"s3://{BUCKET}/")
    body = cloud.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        member = tar.extractfile("metadata.json")
        assert member is not None
        return dict(json.loads(member.read()))


@pytest.mark.parametrize("hosts", [2, 3])
def test_multi_host_training_is_distributed_xgboost_and_the_model_serves(
    cloud: LocalCloud, sharded: str, hosts: int
) -> None:
    # Given the split written in 3 parts, and a training job on `hosts` instances
    name = f"train-{hosts}hosts"
    job = _train(cloud, _training(name, sharded, hosts, {"num_round": "20", "max_depth": "3"}))
    # Then it completed as one collective of `hosts` workers, each on its own shard
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    record = cloud.sagemaker.jobs[name]
    logs = [(record.workdir / f"algo-{i + 1}" / "training.log").read_text() for i in range(hosts)]
    for i, log in enumerate(logs):
        assert f"rank {i} of {hosts}" in log
    train_rows = [int(re.findall(r" rows=(\d+)", log)[0]) for log in logs]
    assert all(rows > 0 for rows in train_rows)
    # And the model (the first host's) was trained on every shard's rows
    metadata = _model_metadata(cloud, job["ModelArtifacts"]["S3ModelArtifacts"])
    assert metadata["hosts"] == hosts
    assert metadata["train_rows"] == sum(train_rows) == len(_rows(cloud, f"{sharded}/train/"))
    assert metadata["validation_metrics"]["validation-auc"] > 0.85
    # And every host process has ended
    assert all(p.poll() is not None for p in record.procs)
    # And the model serves
    predictions = _serve_and_predict(
        cloud, f"ep-{hosts}hosts", job["ModelArtifacts"]["S3ModelArtifacts"], sharded
    )
    assert len(predictions) == 3
    assert all(0.0 <= p <= 1.0 for p in predictions)


def test_a_failing_host_fails_the_job_with_its_reason_and_stops_the_others(
    cloud: LocalCloud, sharded: str
) -> None:
    job = _train(cloud, _training("train-bad", sharded, 2, {"num_round": "0"}))
    assert job["TrainingJobStatus"] == "Failed"
    assert "num_round must be a positive integer" in job["FailureReason"]
    assert all(p.poll() is not None for p in cloud.sagemaker.jobs["train-bad"].procs)


def test_a_spot_interruption_restarts_the_job_from_its_checkpoints(
    cloud: LocalCloud, sharded: str
) -> None:
    # Given a 2-host Spot training job checkpointing every 10 rounds to an S3 prefix
    sm = cloud.client("sagemaker")
    checkpoints = f"s3://{BUCKET}/checkpoints/spot/train"
    request = _training(
        "train-spot",
        sharded,
        2,
        {"num_round": "400", "max_depth": "6", "eta": "0.05", "checkpoint_interval": "10"},
        EnableManagedSpotTraining=True,
        CheckpointConfig={"S3Uri": checkpoints, "LocalPath": "/opt/ml/checkpoints"},
    )
    request["StoppingCondition"]["MaxWaitTimeInSeconds"] = 600
    sm.create_training_job(**request)
    record = cloud.sagemaker.jobs["train-spot"]
    local = record.workdir / "algo-1" / "opt_ml" / "checkpoints"
    # When the instances are reclaimed once it has written a checkpoint
    wait(lambda: any(local.glob("checkpoint-*.ubj")) if local.is_dir() else False)
    assert cloud.sagemaker.job_runner.interrupt_spot("train-spot")
    job = _settled(
        lambda: sm.describe_training_job(TrainingJobName="train-spot"), "TrainingJobStatus"
    )
    # Then the job restarted and completed, once interrupted
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert record.interruptions == 1
    statuses = [t["Status"] for t in job["SecondaryStatusTransitions"]]
    assert statuses.count("Interrupted") == 1
    assert statuses.count("Training") == 2
    # And the restart resumed from the checkpoint instead of starting over
    log = (record.workdir / "algo-1" / "training.log").read_text()
    (resumed,) = [int(r) for r in re.findall(r"resuming after round (\d+) of 400", log)]
    assert resumed >= 10
    boosted = len(re.findall(r"^\[\d+\]", log, re.MULTILINE))  # rank 0 logs each round
    assert 400 <= boosted <= 400 + 10  # at most one checkpoint interval was boosted twice
    # And the checkpoints live under the CheckpointConfig prefix, the model has 400 rounds
    listed = sm_keys(cloud, "checkpoints/spot/train/")
    assert any(re.search(r"checkpoint-\d{6}\.ubj$", k) for k in listed)
    metadata = _model_metadata(cloud, job["ModelArtifacts"]["S3ModelArtifacts"])
    assert metadata["resumed_from_round"] == resumed
    assert metadata["num_round"] == 400


def sm_keys(cloud: LocalCloud, prefix: str) -> list[str]:
    out = cloud.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for o in out.get("Contents", [])]


def test_interrupting_a_job_that_is_not_spot_is_refused(cloud: LocalCloud) -> None:
    assert not cloud.sagemaker.job_runner.interrupt_spot("train-2hosts")  # finished, not Spot
    assert not cloud.sagemaker.job_runner.interrupt_spot("no-such-job")
