"""preprocess, train, evaluate (start): SageMaker jobs named from the execution, following
the container contract; reused when InProgress/Completed, retried as attempt+1 when
Failed/Stopped (moto in-process, Stubber where moto cannot)."""

from __future__ import annotations

from typing import Any

import pytest
from fn_support import BUCKET, EXECUTION, IMAGE, ROLE, state
from sm_stubs import not_found, processing_job, stubbed, training_job

from functions.evaluate.handler import lambda_handler as evaluate_handler
from functions.evaluate.logic import start_evaluation
from functions.preprocess.handler import lambda_handler as preprocess_handler
from functions.train.handler import lambda_handler as train_handler
from functions.train.logic import start_training
from shared import aws
from shared.adapters.sagemaker import SageMaker
from shared.errors import ConfigurationError, JobFailedError, TransientServiceError
from shared.models import (
    EvaluateOutput,
    EvaluateRequest,
    PreprocessOutput,
    TrainOutput,
    TrainRequest,
)
from shared.naming import resource_name
from shared.settings import JobSettings, load_settings

RUNS = f"s3://{BUCKET}/runs/{EXECUTION}"


def run_preprocess(context: Any) -> dict[str, Any]:
    return preprocess_handler(state(), context)


def run_train(context: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    pre = run_preprocess(context)
    return pre, train_handler(state(preprocess=pre), context)


# --- preprocess -----------------------------------------------------------------------------


def test_preprocess_starts_processing_job_per_container_contract(moto: None, context: Any) -> None:
    # GIVEN a validated execution state
    # WHEN StartPreprocessing runs
    out = PreprocessOutput.model_validate(run_preprocess(context))
    # THEN a processing job named from the execution reads raw data and writes five outputs
    assert out.job_name == resource_name(EXECUTION, "preprocess", 1)
    assert not out.reused
    assert out.poll.status == "InProgress"
    assert out.poll.attempt == 0
    assert out.train_uri == f"{RUNS}/preprocess/train"
    assert out.sample_uri == f"{RUNS}/preprocess/sample"
    job = aws.sagemaker().describe_processing_job(ProcessingJobName=out.job_name)
    assert job["AppSpecification"]["ContainerEntrypoint"][-1] == "preprocess"
    assert job["AppSpecification"]["ImageUri"] == IMAGE
    assert job["RoleArn"] == ROLE
    (raw,) = job["ProcessingInputs"]
    assert raw["S3Input"]["S3Uri"] == f"s3://{BUCKET}/data/"
    assert raw["S3Input"]["LocalPath"] == "/opt/ml/processing/input/raw"
    outputs = {o["OutputName"]: o["S3Output"] for o in job["ProcessingOutputConfig"]["Outputs"]}
    assert set(outputs) == {"train", "validation", "test", "profile", "sample"}
    assert outputs["test"]["LocalPath"] == "/opt/ml/processing/output/test"
    assert outputs["test"]["S3Uri"] == out.test_uri


def test_processing_jobs_get_target_and_problem_type_as_environment(context: Any) -> None:
    # GIVEN a regression config (moto does not keep a job's Environment: check the request)
    from functions.preprocess.logic import output_uris, processing_request
    from shared.models import StepRequest

    config = state()["config"] | {
        "problem_type": "regression",
        "target_column": "price",
        "ignore_columns": ["id", "size, cm"],
        "objective": {"name": "rmse", "goal": "minimize", "threshold": 5, "min_improvement": 0},
    }
    request = StepRequest.model_validate(state(config=config))
    settings = load_settings(JobSettings)
    # WHEN the processing request is built
    built = processing_request("job", request, settings, output_uris(settings, EXECUTION))
    # THEN the container reads the target, problem type and ignored columns (a JSON list:
    # names may hold commas) from its environment
    assert built["Environment"] == {
        "TARGET_COLUMN": "price",
        "PROBLEM_TYPE": "regression",
        "IGNORE_COLUMNS": '["id", "size, cm"]',
        "SPLIT_PARTS": "1",  # parts per split: the training instance count
    }
    assert built["AppSpecification"]["ContainerEntrypoint"] == [
        "python3", "-m", "sfn_container", "preprocess"
    ]  # fmt: skip
    assert built["StoppingCondition"] == {"MaxRuntimeInSeconds": config["max_runtime_seconds"]}


def test_metric_definitions_parse_the_container_log_lines() -> None:
    # GIVEN the metric definitions of a classification training job
    import re

    from functions.train.logic import metric_definitions
    from shared.models import PipelineInput

    config = PipelineInput.model_validate(state()["config"])
    regexes = {m["Name"]: m["Regex"] for m in metric_definitions(config)}
    # WHEN SageMaker applies them to the container's log lines
    per_round = re.search(regexes["validation:auc"], "[12]\ttrain-auc:0.99\tvalidation-auc:0.97")
    final = re.search(regexes["validation:auc"], "validation-auc: 9.5e-01")
    # THEN the values are captured
    assert per_round is not None
    assert per_round.group(1) == "0.97"
    assert final is not None
    assert float(final.group(1)) == 0.95


def test_preprocess_missing_role_is_configuration_error(
    moto: None, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAGEMAKER_ROLE_ARN")
    with pytest.raises(ConfigurationError, match="SAGEMAKER_ROLE_ARN: not set"):
        run_preprocess(context)


# --- train ----------------------------------------------------------------------------------


def test_train_starts_training_job_with_string_hyperparameters(moto: None, context: Any) -> None:
    # GIVEN preprocess outputs
    # WHEN StartTraining runs
    pre, raw = run_train(context)
    out = TrainOutput.model_validate(raw)
    # THEN the job trains on the train/validation channels with string hyperparameters
    job = aws.sagemaker().describe_training_job(TrainingJobName=out.job_name)
    assert out.job_name == resource_name(EXECUTION, "train", 1)
    params = job["HyperParameters"]
    assert params["target_column"] == "target"
    assert params["problem_type"] == "binary_classification"
    assert params["max_depth"] == "4"
    assert all(isinstance(v, str) for v in params.values())
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]
    }
    assert channels == {"train": pre["train_uri"], "validation": pre["validation_uri"]}
    assert job["StoppingCondition"]["MaxRuntimeInSeconds"] == 3600
    assert job["OutputDataConfig"]["S3OutputPath"] == f"{RUNS}/train"
    assert out.model_artifact_uri == f"{RUNS}/train/{out.job_name}/output/model.tar.gz"


def test_reinvoking_train_reuses_the_job(moto: None, context: Any) -> None:
    # GIVEN a training job already started for this execution
    pre, first = run_train(context)
    # WHEN StartTraining runs again with the same input (a retry or a re-run)
    second = TrainOutput.model_validate(train_handler(state(preprocess=pre), context))
    # THEN the same job is followed and no second job exists
    assert second.reused
    assert second.job_name == first["job_name"]
    assert second.model_artifact_uri == first["model_artifact_uri"]
    jobs = aws.sagemaker().list_training_jobs()["TrainingJobSummaries"]
    assert [j["TrainingJobName"] for j in jobs] == [first["job_name"]]


def _train_request(context: Any) -> TrainRequest:
    pre = PreprocessOutput.model_validate(
        {
            "job_name": "p",
            "reused": False,
            "train_uri": f"{RUNS}/preprocess/train",
            "validation_uri": f"{RUNS}/preprocess/validation",
            "test_uri": f"{RUNS}/preprocess/test",
            "profile_uri": f"{RUNS}/preprocess/profile",
            "sample_uri": f"{RUNS}/preprocess/sample",
            "poll": {"status": "Completed", "attempt": 3, "wait_seconds": 1},
        }
    )
    return TrainRequest.model_validate(state(preprocess=pre.model_dump()))


@pytest.mark.parametrize("ended", ["Failed", "Stopped"])
def test_redrive_after_failed_job_starts_next_attempt(context: Any, ended: str) -> None:
    # GIVEN attempt 1 of this execution's training job ended Failed/Stopped
    client, stub = stubbed("sagemaker")
    first, second = resource_name(EXECUTION, "train", 1), resource_name(EXECUTION, "train", 2)
    stub.add_response("describe_training_job", training_job(first, ended, "AlgorithmError"))
    not_found(stub, "describe_training_job")
    stub.add_response("create_training_job", {"TrainingJobArn": "arn:x"}, None)
    stub.add_response("list_training_jobs", {"TrainingJobSummaries": []})  # the history
    # WHEN StartTraining runs again (a redrive)
    with stub:
        out = start_training(_train_request(context), load_settings(JobSettings), SageMaker(client))
        stub.assert_no_pending_responses()
    # THEN attempt 2 is started under its own name
    assert out.job_name == second
    assert not out.reused
    assert out.model_artifact_uri.endswith(f"/{second}/output/model.tar.gz")


@pytest.mark.parametrize("status", ["InProgress", "Completed"])
def test_resource_in_use_reuses_the_running_job(context: Any, status: str) -> None:
    # GIVEN a concurrent duplicate created the job between our describe and create
    client, stub = stubbed("sagemaker")
    name = resource_name(EXECUTION, "train", 1)
    not_found(stub, "describe_training_job")
    stub.add_client_error("create_training_job", "ResourceInUse", "exists", 400)
    stub.add_response("describe_training_job", training_job(name, status))
    if status == "InProgress":  # only a job to poll looks up the step's history
        stub.add_response("list_training_jobs", {"TrainingJobSummaries": []})
    # WHEN StartTraining runs
    with stub:
        out = start_training(_train_request(context), load_settings(JobSettings), SageMaker(client))
    # THEN the existing job is reused (a Completed one needs only a short wait)
    assert out.job_name == name
    assert out.reused
    assert out.poll.status == status


def test_throttled_create_is_transient(context: Any) -> None:
    client, stub = stubbed("sagemaker")
    not_found(stub, "describe_training_job")
    stub.add_client_error("create_training_job", "ThrottlingException", "Rate exceeded", 400)
    with stub, pytest.raises(TransientServiceError, match="ThrottlingException"):
        start_training(_train_request(context), load_settings(JobSettings), SageMaker(client))


def test_too_many_failed_attempts_fail_the_step(context: Any) -> None:
    from shared.jobs import MAX_ATTEMPTS

    client, stub = stubbed("sagemaker")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        name = resource_name(EXECUTION, "train", attempt)
        stub.add_response("describe_training_job", training_job(name, "Failed", "OOM"))
    with stub, pytest.raises(JobFailedError, match="attempts"):
        start_training(_train_request(context), load_settings(JobSettings), SageMaker(client))


# --- evaluate (start) -----------------------------------------------------------------------


def _deploy_champion(model_data: str) -> None:
    sm = aws.sagemaker()
    sm.create_model(
        ModelName="champion-model",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": model_data},
    )
    sm.create_endpoint_config(
        EndpointConfigName="champion-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "champion-model",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName="sfn-mlops-endpoint", EndpointConfigName="champion-config")


def _evaluate_inputs(job_name: str) -> dict[str, dict[str, Any]]:
    job = aws.sagemaker().describe_processing_job(ProcessingJobName=job_name)
    return {i["InputName"]: i["S3Input"] for i in job["ProcessingInputs"]}


def test_evaluate_first_model_has_no_champion(moto: None, context: Any) -> None:
    # GIVEN no endpoint yet
    pre, train = run_train(context)
    # WHEN StartEvaluation runs
    out = EvaluateOutput.model_validate(
        evaluate_handler(state(preprocess=pre, train=train), context)
    )
    # THEN only the challenger is scored on the test split
    assert out.champion_model_uri is None
    inputs = _evaluate_inputs(out.job_name)
    # profile: merged into the report dir; train: the challenger's drift baseline
    assert set(inputs) == {"test", "challenger", "profile", "train"}
    assert inputs["test"]["S3Uri"] == pre["test_uri"]
    assert inputs["challenger"]["S3Uri"] == train["model_artifact_uri"]
    assert inputs["challenger"]["LocalPath"] == "/opt/ml/processing/input/challenger"
    assert out.report_uri == f"{RUNS}/evaluate/evaluation/evaluation.json"
    job = aws.sagemaker().describe_processing_job(ProcessingJobName=out.job_name)
    assert job["AppSpecification"]["ContainerEntrypoint"][-1] == "evaluate"
    (output,) = job["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["LocalPath"] == "/opt/ml/processing/output/evaluation"


def test_evaluate_scores_the_model_behind_the_endpoint_as_champion(
    moto: None, context: Any
) -> None:
    # GIVEN the endpoint serves an earlier model
    champion = f"s3://{BUCKET}/runs/older/train/job/output/model.tar.gz"
    _deploy_champion(champion)
    pre, train = run_train(context)
    # WHEN StartEvaluation runs
    out = EvaluateOutput.model_validate(
        evaluate_handler(state(preprocess=pre, train=train), context)
    )
    # THEN that model is the champion input
    assert out.champion_model_uri == champion
    inputs = _evaluate_inputs(out.job_name)
    assert inputs["champion"]["S3Uri"] == champion
    assert inputs["champion"]["LocalPath"] == "/opt/ml/processing/input/champion"


def test_reused_evaluation_keeps_the_champion_it_was_given(context: Any) -> None:
    # GIVEN this execution's evaluation job exists, started with champion A
    client, stub = stubbed("sagemaker")
    name = resource_name(EXECUTION, "evaluate", 1)
    champion_a = f"s3://{BUCKET}/runs/a/train/j/output/model.tar.gz"
    not_found(stub, "describe_endpoint")  # (the endpoint changed meanwhile: now none)
    inputs = [{"InputName": "champion", "S3Input": {
        "S3Uri": champion_a, "LocalPath": "/opt/ml/processing/input/champion",
        "S3DataType": "S3Prefix", "S3InputMode": "File"}}]  # fmt: skip
    stub.add_response("describe_processing_job", processing_job(name, "InProgress", inputs=inputs))
    stub.add_response("list_processing_jobs", {"ProcessingJobSummaries": []})
    pre = _train_request(context).preprocess.model_dump()
    train = {
        "job_name": "t",
        "reused": False,
        "model_artifact_uri": f"{RUNS}/train/t/output/model.tar.gz",
        "poll": {"status": "Completed", "attempt": 2, "wait_seconds": 1},
    }
    request = EvaluateRequest.model_validate(state(preprocess=pre, train=train))
    # WHEN StartEvaluation runs again
    with stub:
        out = start_evaluation(request, load_settings(JobSettings), SageMaker(client))
    # THEN it reports the champion that job scores, not today's endpoint
    assert out.reused
    assert out.champion_model_uri == champion_a


# --- recheck (CheckChampion, under the deployment lock) -----------------------------------------


def _evaluated(context: Any) -> dict[str, Any]:
    """State after StartEvaluation (no champion then) -- as CheckChampion receives it."""
    pre, train = run_train(context)
    evaluate = evaluate_handler(state(preprocess=pre, train=train), context)
    return state(preprocess=pre, train=train, evaluate=evaluate)


def test_recheck_with_the_same_champion_changes_nothing(moto: None, context: Any) -> None:
    from functions.evaluate.handler import recheck_handler
    from shared.models import RecheckOutput

    # GIVEN the champion is still the one evaluated against (none)
    evaluated = _evaluated(context)
    # WHEN CheckChampion runs
    out = RecheckOutput.model_validate(recheck_handler(evaluated, context))
    # THEN the gate's decision stands: no job, nothing to poll
    assert (out.changed, out.job_name, out.poll.status) == (False, None, "Completed")


def test_recheck_after_a_newer_champion_reevaluates_on_the_same_split(
    moto: None, context: Any
) -> None:
    from functions.evaluate.handler import recheck_handler
    from shared.models import RecheckOutput

    # GIVEN another execution deployed a model after this one's evaluation
    evaluated = _evaluated(context)
    newer = f"s3://{BUCKET}/runs/newer/train/job/output/model.tar.gz"
    _deploy_champion(newer)
    # WHEN CheckChampion runs (and is retried)
    out = RecheckOutput.model_validate(recheck_handler(evaluated, context))
    again = RecheckOutput.model_validate(recheck_handler(evaluated, context))
    # THEN one re-evaluation job, named from the execution and step, scores the challenger and
    # the newer champion on the very test split of this execution; a retry reuses it
    assert out.changed
    assert out.champion_model_uri == newer
    assert out.evaluated_champion_uri is None
    assert out.job_name == resource_name(EXECUTION, "recheck", 1)
    assert (again.job_name, again.reused) == (out.job_name, True)
    inputs = _evaluate_inputs(out.job_name)
    assert inputs["test"]["S3Uri"] == evaluated["preprocess"]["test_uri"]
    assert inputs["champion"]["S3Uri"] == newer
    assert inputs["challenger"]["S3Uri"] == evaluated["train"]["model_artifact_uri"]
    assert out.report_uri == f"{RUNS}/recheck/evaluation/evaluation.json"
