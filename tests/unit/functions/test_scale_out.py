"""Scaling out: multi-instance processing and training requests, Spot training settings,
and the validation refusals for what cannot scale out."""

from __future__ import annotations

from typing import Any

import pytest
from fn_support import BUCKET, EXECUTION, EXECUTION_ARN, config, state

from functions.evaluate.logic import processing_request as evaluation_request
from functions.preprocess.logic import output_uris
from functions.preprocess.logic import processing_request as preprocess_request
from functions.train.logic import training_request
from functions.validate.handler import lambda_handler as validate_handler
from shared.errors import InvalidInputError
from shared.models import EvaluateRequest, StepRequest, TrainRequest
from shared.resources import CHECKPOINTS_PREFIX
from shared.settings import JobSettings, load_settings

RUNS = f"s3://{BUCKET}/runs/{EXECUTION}"
PRE = {
    "job_name": "p",
    "reused": False,
    **{f"{n}_uri": f"{RUNS}/preprocess/{n}" for n in ("train", "validation", "test", "profile")},
    "sample_uri": f"{RUNS}/preprocess/sample",
    "poll": {"status": "Completed", "attempt": 1, "wait_seconds": 1},
}
TRAIN = {
    "job_name": "t",
    "reused": False,
    "model_artifact_uri": f"{RUNS}/train/t/output/model.tar.gz",
    "poll": {"status": "Completed", "attempt": 1, "wait_seconds": 1},
}


def _config(processing: int = 1, training: int = 1, **training_extra: Any) -> dict[str, Any]:
    base = config()
    return base | {
        "processing": base["processing"] | {"instance_count": processing},
        "training": base["training"] | {"instance_count": training, **training_extra},
    }


def _distribution(source: dict[str, Any]) -> str:
    return str(source["S3DataDistributionType"])


def test_multi_instance_preprocessing_shards_the_raw_objects_and_writes_parts_for_training(
    context: Any,
) -> None:
    # GIVEN 3 processing instances and 2 training instances
    request = StepRequest.model_validate(state(config=_config(processing=3, training=2)))
    settings = load_settings(JobSettings)
    # WHEN the preprocessing request is built
    built = preprocess_request("job", request, settings, output_uris(settings, EXECUTION))
    # THEN each host gets a disjoint subset of the raw objects
    (raw,) = built["ProcessingInputs"]
    assert _distribution(raw["S3Input"]) == "ShardedByS3Key"
    assert built["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 3
    # AND every split is written in as many parts as training has hosts
    assert built["Environment"]["SPLIT_PARTS"] == "2"


def test_one_instance_preprocessing_replicates_its_input(context: Any) -> None:
    request = StepRequest.model_validate(state())
    settings = load_settings(JobSettings)
    built = preprocess_request("job", request, settings, output_uris(settings, EXECUTION))
    assert _distribution(built["ProcessingInputs"][0]["S3Input"]) == "FullyReplicated"


@pytest.mark.parametrize(("count", "expected"), [(1, "FullyReplicated"), (3, "ShardedByS3Key")])
def test_training_hosts_read_their_shard_of_train_and_validation(
    context: Any, count: int, expected: str
) -> None:
    request = TrainRequest.model_validate(state(config=_config(training=count), preprocess=PRE))
    built = training_request("job", request, load_settings(JobSettings), f"{RUNS}/train")
    sources = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in built["InputDataConfig"]}
    assert {name: _distribution(s) for name, s in sources.items()} == {
        "train": expected,
        "validation": expected,
    }
    assert built["ResourceConfig"]["InstanceCount"] == count
    assert "EnableManagedSpotTraining" not in built
    assert "CheckpointConfig" not in built


def test_spot_training_sets_managed_spot_max_wait_and_a_checkpoint_prefix(context: Any) -> None:
    # GIVEN training.use_spot with a checkpoint every 5 rounds
    cfg = _config(training=2, use_spot=True, checkpoint_interval=5)
    request = TrainRequest.model_validate(state(config=cfg, preprocess=PRE))
    # WHEN the training request is built
    built = training_request("job-1", request, load_settings(JobSettings), f"{RUNS}/train")
    # THEN SageMaker trains on Spot, waiting at most twice the runtime
    assert built["EnableManagedSpotTraining"] is True
    runtime = cfg["max_runtime_seconds"]
    assert built["StoppingCondition"] == {
        "MaxRuntimeInSeconds": runtime,
        "MaxWaitTimeInSeconds": 2 * runtime,
    }
    # AND syncs /opt/ml/checkpoints with a prefix derived from the execution (a later
    # attempt of the same execution resumes too), which the bucket's lifecycle expires
    assert built["CheckpointConfig"] == {
        "S3Uri": f"s3://{BUCKET}/{CHECKPOINTS_PREFIX}{EXECUTION}/train",
        "LocalPath": "/opt/ml/checkpoints",
    }
    # AND the container checkpoints every 5 rounds
    assert built["HyperParameters"]["checkpoint_interval"] == "5"


def test_evaluation_runs_on_one_instance_and_reads_every_host_profile(context: Any) -> None:
    # GIVEN preprocessing on 4 instances
    request = EvaluateRequest.model_validate(
        state(config=_config(processing=4), preprocess=PRE, train=TRAIN)
    )
    # WHEN the evaluation request is built
    built = evaluation_request("job", request, load_settings(JobSettings), None, f"{RUNS}/e")
    # THEN it runs on one instance of processing's type, with the whole test split
    cluster = built["ProcessingResources"]["ClusterConfig"]
    assert cluster["InstanceCount"] == 1
    assert cluster["InstanceType"] == request.config.processing.instance_type
    inputs = {i["InputName"]: i["S3Input"] for i in built["ProcessingInputs"]}
    assert {_distribution(s) for s in inputs.values()} == {"FullyReplicated"}
    assert inputs["profile"]["S3Uri"] == PRE["profile_uri"]


def _validate(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    event = {"payload": payload, "execution_name": EXECUTION, "execution_arn": EXECUTION_ARN}
    return dict(validate_handler(event, context))


def test_evaluation_on_several_instances_is_refused_with_the_reason(context: Any) -> None:
    payload = {"evaluation": {"instance_type": "ml.m5.large", "instance_count": 2}}
    with pytest.raises(InvalidInputError) as raised:
        _validate(payload, context)
    assert "evaluation.instance_count must be 1, got 2" in str(raised.value)
    assert "larger instance_type" in str(raised.value)


def test_spot_max_wait_below_the_runtime_is_refused(context: Any) -> None:
    payload = {
        "max_runtime_seconds": 3600,
        "training": {"use_spot": True, "max_wait_seconds": 600},
    }
    with pytest.raises(InvalidInputError, match=r"max_wait_seconds \(600\) must be >= "):
        _validate(payload, context)


def test_max_wait_without_spot_is_refused(context: Any) -> None:
    with pytest.raises(InvalidInputError, match=r"applies to Spot training only"):
        _validate({"training": {"max_wait_seconds": 7200}}, context)


def test_spot_poll_schedule_must_cover_the_max_wait(context: Any) -> None:
    # GIVEN polls that cover the runtime but not Spot's longer max wait
    payload = {
        "max_runtime_seconds": 600,
        "poll_interval_seconds": 60,
        "max_poll_interval_seconds": 60,
        "max_polls": 15,
        "training": {"use_spot": True, "max_wait_seconds": 3000},
    }
    assert _validate(payload | {"training": {"use_spot": False}}, context)["config"]
    with pytest.raises(InvalidInputError, match=r"Spot training's max wait \(3000s\)"):
        _validate(payload, context)


def test_multi_instance_processing_and_training_are_accepted(context: Any) -> None:
    payload = {
        "processing": {"instance_count": 3},
        "training": {"instance_count": 2, "use_spot": True},
    }
    out = _validate(payload, context)
    assert out["config"]["training"]["instance_count"] == 2
