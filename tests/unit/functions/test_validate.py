"""validate: payload deep-merged over the pipeline defaults; every bad field named at once."""

from __future__ import annotations

from typing import Any

import pytest
from fn_support import BUCKET, EXECUTION, EXECUTION_ARN, IMAGE, make_bucket, upload_data

from functions.validate.handler import lambda_handler
from functions.validate.logic import deep_merge
from shared import aws
from shared.errors import ConfigurationError, InvalidInputError
from shared.models import ValidateOutput
from shared.resources import pipeline_defaults


@pytest.fixture(autouse=True)
def data(moto: None) -> str:
    """moto S3 with the artifact bucket and one raw data object under data/."""
    make_bucket()
    return upload_data(b'id,"size, cm",color,target\n1,2.5,red,0\n')


def request(payload: Any) -> dict[str, Any]:
    return {"payload": payload, "execution_name": EXECUTION, "execution_arn": EXECUTION_ARN}


def test_empty_payload_resolves_to_the_defaults(context: Any) -> None:
    # GIVEN a manual start with an empty payload
    # WHEN validate runs
    out = ValidateOutput.model_validate(lambda_handler(request({}), context))
    # THEN the config is config/pipeline.yaml plus the default image and data prefix
    defaults = pipeline_defaults()
    assert out.config.image_uri == IMAGE
    assert out.config.raw_data_uri == f"s3://{BUCKET}/data/"
    assert out.config.objective.threshold == defaults["objective"]["threshold"]
    assert out.config.hyperparameters == defaults["hyperparameters"]
    assert (out.execution_name, out.execution_arn) == (EXECUTION, EXECUTION_ARN)


def test_payload_deep_merges_over_defaults(context: Any) -> None:
    # GIVEN a payload overriding one hyperparameter and the threshold
    payload = {"hyperparameters": {"eta": 0.05}, "objective": {"threshold": 0.9}}
    # WHEN validate runs
    out = ValidateOutput.model_validate(lambda_handler(request(payload), context))
    # THEN those change and the sibling defaults stay
    assert out.config.hyperparameters["eta"] == 0.05
    assert (
        out.config.hyperparameters["max_depth"]
        == pipeline_defaults()["hyperparameters"]["max_depth"]
    )
    assert out.config.objective.threshold == 0.9
    assert out.config.objective.name == pipeline_defaults()["objective"]["name"]


def test_every_bad_field_is_named_in_one_error(context: Any) -> None:
    # GIVEN a payload with four problems: an unknown key, a wrong type, a bad enum, a typo
    payload = {
        "max_polls": "many",
        "problem_type": "multiclass",
        "objective": {"threshold": "high"},
        "endpoint_nmae": "x",
    }
    # WHEN validate runs
    with pytest.raises(InvalidInputError) as raised:
        lambda_handler(request(payload), context)
    # THEN the one error lists each as `path: problem`, with the fix for the unknown key
    message = str(raised.value)
    assert "4 invalid field(s)" in message
    assert "max_polls: " in message
    assert "problem_type: " in message
    assert "objective.threshold: " in message
    assert "endpoint_nmae: unknown key; remove it or fix its spelling" in message


def test_inconsistent_objective_is_reported(context: Any) -> None:
    # GIVEN a regression run that keeps the classification metric
    # WHEN / THEN the cause says what fits
    with pytest.raises(InvalidInputError, match=r"does not fit problem_type 'regression'"):
        lambda_handler(request({"problem_type": "regression"}), context)


def test_poll_schedule_must_cover_max_runtime(context: Any) -> None:
    # GIVEN adaptive polls that cannot wait out a job's max runtime (1+2+4 s for a 600 s job)
    payload = {
        "poll_schedule": "adaptive",
        "end_poll_interval_seconds": 1,
        "max_runtime_seconds": 600,
        "poll_interval_seconds": 1,
        "max_poll_interval_seconds": 4,
        "max_polls": 3,
    }
    # WHEN / THEN validation fails and says how many polls are needed
    with pytest.raises(InvalidInputError) as raised:
        lambda_handler(request(payload), context)
    assert "max_polls: 3 polls" in str(raised.value)
    assert "set max_polls >= 152" in str(raised.value)  # waits 1+2+4+4+...: 4n-5 >= 600


def test_payload_that_is_not_an_object_is_invalid_input(context: Any) -> None:
    with pytest.raises(InvalidInputError, match=r"payload: "):
        lambda_handler(request(["not", "an", "object"]), context)


def test_missing_setting_is_a_configuration_error_naming_it(
    context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a deployment without DEFAULT_IMAGE_URI and with broken PIPELINE_DEFAULTS
    monkeypatch.delenv("DEFAULT_IMAGE_URI")
    monkeypatch.setenv("PIPELINE_DEFAULTS", "{not json")
    # WHEN / THEN the error names both variables
    with pytest.raises(ConfigurationError) as raised:
        lambda_handler(request({}), context)
    assert "DEFAULT_IMAGE_URI: not set" in str(raised.value)
    assert "PIPELINE_DEFAULTS: " in str(raised.value)


def test_deep_merge_replaces_non_mappings_and_keeps_inputs() -> None:
    base = {"a": {"b": 1, "c": 2}, "d": [1]}
    override = {"a": {"b": 3}, "d": [2]}
    assert deep_merge(base, override) == {"a": {"b": 3, "c": 2}, "d": [2]}
    assert base == {"a": {"b": 1, "c": 2}, "d": [1]}


def problems_of(payload: dict[str, Any], context: Any) -> str:
    with pytest.raises(InvalidInputError) as raised:
        lambda_handler(request(payload), context)
    return str(raised.value)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"hyperparameters": {"num_round": -5}},
            "hyperparameters.num_round: -5 is out of range; XGBoost needs an integer in "
            "[1, 100000]",
        ),
        (
            {"hyperparameters": {"max_depth": 1e9}},
            "hyperparameters.max_depth: 1000000000.0 is out of range; XGBoost needs an integer "
            "in [1, 64]",
        ),
        (
            {"hyperparameters": {"eval_period": 0}},
            "hyperparameters.eval_period: 0 is out of range; XGBoost needs an integer in [1, inf)",
        ),
        (
            {"hyperparameters": {"eta": 0}},
            "hyperparameters.eta: 0 is out of range; XGBoost needs a number in (0, 1]",
        ),
        (
            {"hyperparameters": {"subsample": "1.5"}},
            "hyperparameters.subsample: '1.5' is out of range; XGBoost needs a number in (0, 1]",
        ),
        (
            {"hyperparameters": {"tree_method": "gpu"}},
            "hyperparameters.tree_method: 'gpu' is not one of ['auto', 'exact', 'approx', 'hist']",
        ),
        (
            {"training": {"instance_type": "ml.doesnotexist.huge"}},
            "training.instance_type: 'ml.doesnotexist.huge' is not a SageMaker "
            "TrainingInstanceType",
        ),
        (
            {"endpoint": {"instance_type": "ml.m5.huge"}},
            "endpoint.instance_type: 'ml.m5.huge' is not a SageMaker "
            "ProductionVariantInstanceType (per the SageMaker API's valid values); use one such "
            "as ml.m5.",
        ),
        (
            {"tags": {"note": 'say "hi"\n\x00'}},
            "tags.note: holds '\\x00', '\\n', '\"', not allowed by CustomerMetadataValue's pattern",
        ),
        (
            {"tags": {"empty": ""}},
            "tags.empty: is 0 characters; CustomerMetadataValue needs at least 1",
        ),
        (
            {"tags": {"long": "x" * 257}},
            "tags.long: is 257 characters; CustomerMetadataValue allows at most 256",
        ),
        (
            {"max_runtime_seconds": 432000, "max_polls": 200, "poll_interval_seconds": 600},
            "max_runtime_seconds: 3 jobs (preprocess, train, evaluate) of up to 432000s each "
            "need 1296000s, more than the execution timeout of 21600s; set max_runtime_seconds "
            "<= 7200",
        ),
        (
            {"raw_data_uri": "s3://no-such-bucket-here/data/"},
            "raw_data_uri: bucket 'no-such-bucket-here' does not exist (bucket "
            "'no-such-bucket-here', prefix 'data/'); create it or fix raw_data_uri",
        ),
        (
            {"raw_data_uri": f"s3://{BUCKET}/nothing/"},
            f"raw_data_uri: no objects under s3://{BUCKET}/nothing/ (bucket '{BUCKET}', prefix "
            "'nothing/'); upload the data there",
        ),
        (
            {"target_column": "label"},
            f"target_column: 'label' is not a column of s3://{BUCKET}/data/data.csv; its columns "
            "are ['id', 'size, cm', 'color', 'target']; set target_column to one of them",
        ),
        (
            {"ignore_columns": ["id", "customer"]},
            f"ignore_columns: ['customer'] are not columns of s3://{BUCKET}/data/data.csv",
        ),
        (
            {"ignore_columns": ["target"]},
            "ignore_columns lists the target column 'target'; remove it",
        ),
    ],
)
def test_values_that_can_never_work_are_refused_before_any_job(
    payload: dict[str, Any], expected: str, context: Any
) -> None:
    # GIVEN a payload with one value that would fail only after jobs were created
    # WHEN validate runs / THEN the one error names the field, its limit and the fix
    assert expected in problems_of(payload, context)


def test_header_of_gzip_csv_and_parquet_is_read(context: Any) -> None:
    # GIVEN the first data object is gzip CSV, then (another run) Parquet
    import gzip
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    aws.s3().delete_object(Bucket=BUCKET, Key="data/data.csv")
    upload_data(gzip.compress(b'x,"y, z",label\n' + b"1,2,0\n" * 50_000), "data/a.csv.gz")
    # WHEN / THEN its header is what validate checks the target against
    assert "its columns are ['x', 'y, z', 'label']" in problems_of({}, context)
    aws.s3().delete_object(Bucket=BUCKET, Key="data/a.csv.gz")
    buffer = io.BytesIO()
    table = pa.table({"p": [1.0] * 1000, "kind": ["a"] * 1000, "target": [0] * 1000})
    pq.write_table(table, buffer)
    upload_data(buffer.getvalue(), "data/a.parquet")
    out = ValidateOutput.model_validate(
        lambda_handler(request({"ignore_columns": ["kind"]}), context)
    )
    assert out.config.ignore_columns == ["kind"]
    assert "its columns are ['p', 'kind', 'target']" in problems_of(
        {"target_column": "label"}, context
    )


def test_objects_that_are_not_data_files_are_named(context: Any) -> None:
    upload_data(b"hello", "other/readme.txt")
    message = problems_of({"raw_data_uri": f"s3://{BUCKET}/other/"}, context)
    assert "no data files under" in message
    assert "name them *.csv, *.csv.gz or *.parquet" in message


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"promotion": "sometimes"}, "promotion: Input should be 'auto' or 'manual'"),
        (
            {"deploy_strategy": {"type": "blue"}},
            "deploy_strategy.type: Input should be 'all_at_once', 'canary' or 'linear'",
        ),
        (
            {"deploy_strategy": {"canary_size_percent": 80}},
            "deploy_strategy.canary_size_percent: Input should be less than or equal to 50",
        ),
        (
            {"deploy_strategy": {"wait_interval_seconds": 7200}},
            "deploy_strategy.wait_interval_seconds: Input should be less than or equal to 3600",
        ),
        (
            {"deploy_strategy": {"maximum_execution_timeout_seconds": 60}},
            "deploy_strategy.maximum_execution_timeout_seconds: Input should be greater than or "
            "equal to 600",
        ),
        (
            {"load_check": {"max_error_rate": 2}},
            "load_check.max_error_rate: Input should be less than or equal to 1",
        ),
        ({"approval_timeout_seconds": 0}, "approval_timeout_seconds: Input should be greater"),
        (
            {"staging_endpoint_name": "sfn-mlops-endpoint"},
            "staging_endpoint_name must differ from endpoint_name",
        ),
    ],
)
def test_bad_promotion_settings_are_refused_naming_the_field(
    payload: dict[str, Any], expected: str, context: Any
) -> None:
    assert expected in problems_of(payload, context)


def test_no_staging_stage_is_allowed(context: Any) -> None:
    payload = {"staging_endpoint_name": None}
    out = ValidateOutput.model_validate(lambda_handler(request(payload), context))
    assert out.config.staging_endpoint_name is None
    assert out.candidate is None  # a training run


def test_an_endpoint_the_stack_was_not_deployed_with_is_refused(context: Any) -> None:
    # GIVEN a payload naming an endpoint other than config/pipeline.yaml's two (its roles
    # may use only those: the run would fail with AccessDenied at the deploy)
    payload = {"endpoint_name": "other-endpoint", "staging_endpoint_name": "other-staging"}
    # WHEN / THEN validation refuses both before any job, naming the field and the fix
    message = problems_of(payload, context)
    defaults = pipeline_defaults()
    own = f"({defaults['endpoint_name']}, {defaults['staging_endpoint_name']})"
    for field, name in payload.items():
        assert (
            f"{field}: {name!r} is not one of this stack's endpoints {own}; deploy the stack "
            "with it in config/pipeline.yaml or omit it"
        ) in message


def test_the_stacks_own_endpoints_are_accepted(context: Any) -> None:
    # GIVEN a payload naming the configured endpoints (production, and staging)
    defaults = pipeline_defaults()
    payload = {
        "endpoint_name": defaults["endpoint_name"],
        "staging_endpoint_name": defaults["staging_endpoint_name"],
    }
    # WHEN validate runs THEN the run keeps them
    out = ValidateOutput.model_validate(lambda_handler(request(payload), context))
    assert out.config.endpoint_name == defaults["endpoint_name"]
    assert out.config.staging_endpoint_name == defaults["staging_endpoint_name"]


def test_a_model_package_group_other_than_the_stacks_is_refused(context: Any) -> None:
    # GIVEN a payload naming another group (the register role may use only the configured one)
    defaults = pipeline_defaults()
    message = problems_of({"model_package_group": "other-models"}, context)
    # THEN validation refuses it before any job, naming the field, the stack's group and the fix
    assert (
        f"model_package_group: 'other-models' is not this stack's model package group "
        f"({defaults['model_package_group']}); deploy the stack with it in "
        "config/pipeline.yaml or omit it"
    ) in message
    # ... and the stack's own group is accepted
    own = {"model_package_group": defaults["model_package_group"]}
    out = ValidateOutput.model_validate(lambda_handler(request(own), context))
    assert out.config.model_package_group == defaults["model_package_group"]


def _package(status: str, group: str = "sfn-mlops-models") -> str:
    sm = aws.sagemaker()
    sm.create_model_package_group(ModelPackageGroupName=group)
    return str(
        sm.create_model_package(
            ModelPackageGroupName=group,
            ModelApprovalStatus=status,
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": IMAGE,
                        "ModelDataUrl": f"s3://{BUCKET}/runs/x/train/model.tar.gz",
                        "Environment": {
                            "TARGET_COLUMN": "label",
                            "PROBLEM_TYPE": "binary_classification",
                        },
                    }
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            CustomerMetadataProperties={
                "sample_uri": f"s3://{BUCKET}/runs/x/preprocess/sample/",
                "raw_data_uri": f"s3://{BUCKET}/data/",
                "objective_metric": "auc",
                "challenger_value": "0.93",
            },
        )["ModelPackageArn"]
    )


def test_a_registry_approval_run_deploys_the_approved_package(context: Any) -> None:
    # GIVEN an Approved package of the pipeline's group
    arn = _package("Approved")
    # WHEN a run starts with its ARN (what the registry-approval trigger sends)
    out = ValidateOutput.model_validate(
        lambda_handler(request({"model_package_arn": arn}), context)
    )
    # THEN its candidate is the package, and the config takes the package's problem
    assert out.candidate is not None
    assert (out.candidate.source, out.candidate.model_package_arn) == ("registry", arn)
    assert out.candidate.model_artifact_uri == f"s3://{BUCKET}/runs/x/train/model.tar.gz"
    assert out.config.target_column == "label"
    assert out.config.image_uri == IMAGE
    # AND the run's outcome reads like a training run's: the package, and the approval as
    # the decision (with the metric it was registered with)
    assert out.register is not None
    assert out.gate is not None
    assert (out.register.model_package_arn, out.register.approval_status) == (arn, "Approved")
    assert (out.gate.deploy, out.gate.metric, out.gate.challenger) == (True, "auc", 0.93)
    assert out.gate.champion is None
    assert "approved in the model registry" in out.gate.reasons[0]


@pytest.mark.parametrize(
    ("status", "group", "expected"),
    [
        ("PendingManualApproval", "sfn-mlops-models", "is PendingManualApproval: only an Approved"),
        ("Rejected", "sfn-mlops-models", "is Rejected: only an Approved"),
        ("Approved", "other-models", "is in group 'other-models', not this pipeline's"),
    ],
)
def test_a_registry_run_of_a_package_not_approved_here_is_refused(
    status: str, group: str, expected: str, context: Any
) -> None:
    arn = _package(status, group)
    with pytest.raises(InvalidInputError, match=expected):
        lambda_handler(request({"model_package_arn": arn}), context)
