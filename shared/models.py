"""The contracts: the pipeline input (one for every entry point) and each state's input
and output. A state's output model *is* the contract for the JSONPaths in the state
machine definition (state_machine/ selects exactly these fields).

No `from __future__ import annotations` here (nor in shared/settings.py): string annotations
make pydantic compile each one (typing.ForwardRef) when a class is made, a quarter of this
module's import time at cold start (benchmarks/coldstart.py). Annotations are evaluated as
Python runs them, so a class named in a field must be defined above it (`Self` in validators).
"""

import warnings
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ProblemType = Literal["binary_classification", "regression"]
JobType = Literal["processing", "training", "endpoint"]
PollSchedule = Literal["predictive", "adaptive"]

CLASSIFICATION_METRICS = ("auc", "accuracy", "f1", "precision", "recall", "logloss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
MINIMIZED_METRICS = ("logloss", "rmse", "mae")

S3Uri = Annotated[str, Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")]
SageMakerName = Annotated[
    str, Field(min_length=1, max_length=63, pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
]


class Strict(BaseModel):
    """Unknown keys are errors, so a typo in a payload is caught, not ignored.

    `defer_build`: a model's validator is built on first use, so a Lambda builds only the
    models it uses (cold start), not all of this module's.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Objective(Strict):
    name: Literal["auc", "accuracy", "f1", "precision", "recall", "logloss", "rmse", "mae", "r2"]
    goal: Literal["maximize", "minimize"]
    threshold: float
    min_improvement: float = Field(ge=0)

    @model_validator(mode="after")
    def _goal_matches_metric(self) -> Self:
        expected = "minimize" if self.name in MINIMIZED_METRICS else "maximize"
        if self.goal != expected:
            raise ValueError(f"goal for metric {self.name!r} must be {expected!r}")
        return self


class Compute(Strict):
    instance_type: str = Field(pattern=r"^(ml|local)\.[a-z0-9.]+$")
    instance_count: int = Field(ge=1, le=100)
    volume_size_gb: int = Field(default=30, ge=1, le=16384)


class TrainingCompute(Compute):
    """Training's compute: several instances train one model (distributed XGBoost); Spot
    trains on spare capacity, resuming from checkpoints when interrupted."""

    use_spot: bool = Field(
        default=False,
        description="Managed Spot training: EnableManagedSpotTraining with a CheckpointConfig",
    )
    max_wait_seconds: int | None = Field(
        default=None,
        ge=60,
        description="Spot: MaxWaitTimeInSeconds (waiting for capacity + running); default "
        "twice max_runtime_seconds; must be >= max_runtime_seconds",
    )
    checkpoint_interval: int = Field(
        default=10, ge=1, le=10_000, description="Spot: a checkpoint every this many rounds"
    )


#: SageMaker's blue/green limits, from botocore's service model (TrafficRoutingConfig,
#: BlueGreenUpdatePolicy; tests/unit/shared/test_settings.py checks them against it) and, for
#: the sizes, the developer guide (a canary is at most 50% of the fleet; a linear step 10-50%).
WAIT_INTERVAL_MAX = 3600
TERMINATION_WAIT_MAX = 3600
MAX_EXECUTION_TIMEOUT_RANGE = (600, 28800)


class DeployStrategy(Strict):
    """How a production update shifts traffic (SageMaker BlueGreenUpdatePolicy): all at once,
    a canary share first, or linear steps, each followed by a wait with the rollback alarms
    watched; then `termination_wait_seconds` of baking on the whole new fleet."""

    type: Literal["all_at_once", "canary", "linear"]
    canary_size_percent: int = Field(
        default=10,
        ge=1,
        le=50,
        description="canary: share of the new fleet that gets traffic first",
    )
    linear_step_percent: int = Field(
        default=20, ge=10, le=50, description="linear: share of traffic moved per step"
    )
    wait_interval_seconds: int = Field(
        ge=0,
        le=WAIT_INTERVAL_MAX,
        description="WaitIntervalInSeconds: after the canary (each linear step), alarms watched",
    )
    termination_wait_seconds: int = Field(
        ge=0,
        le=TERMINATION_WAIT_MAX,
        description="TerminationWaitInSeconds: baking on the new fleet before the old one goes",
    )
    maximum_execution_timeout_seconds: int = Field(
        ge=MAX_EXECUTION_TIMEOUT_RANGE[0],
        le=MAX_EXECUTION_TIMEOUT_RANGE[1],
        description="MaximumExecutionTimeoutInSeconds of the whole update",
    )


class LoadCheck(Strict):
    """The staging endpoint's short load check: `requests` single-row invocations,
    `concurrency` at a time; p99 latency and error rate must stay under the thresholds."""

    requests: int = Field(ge=1, le=10_000)
    concurrency: int = Field(ge=1, le=64)
    max_p99_latency_ms: float = Field(gt=0, le=60_000)
    max_error_rate: float = Field(ge=0, le=1)


class PipelineInput(Strict):
    """One execution's resolved configuration: payload over config/pipeline.yaml defaults."""

    image_uri: str = Field(
        min_length=1, description="ECR image (tag or @digest) with the model code"
    )
    raw_data_uri: S3Uri = Field(
        description="S3 prefix whose CSV, .csv.gz and Parquet files are the raw data set"
    )
    target_column: str = Field(min_length=1, description="the column to predict")
    ignore_columns: list[str] = Field(
        default_factory=list, description="columns of the data not to train on (e.g. an id)"
    )
    problem_type: ProblemType
    hyperparameters: dict[str, str | int | float] = Field(default_factory=dict)
    objective: Objective
    processing: Compute
    training: TrainingCompute
    evaluation: Compute | None = Field(
        default=None,
        description="evaluation's compute (default: processing's instance type, 1 instance); "
        "instance_count must be 1",
    )
    endpoint: Compute
    max_runtime_seconds: int = Field(ge=60, le=432000)
    poll_interval_seconds: int = Field(ge=1, le=3600)
    max_poll_interval_seconds: int = Field(ge=1, le=3600)
    max_polls: int = Field(ge=1, le=200)
    poll_schedule: PollSchedule = Field(
        description="predictive: waits from the step's last duration and the job's progress "
        "(shared/schedule.py); adaptive: poll_interval_seconds doubling to the max"
    )
    end_poll_interval_seconds: int = Field(
        ge=1, le=3600, description="predictive: the wait between polls after the predicted end"
    )
    prediction_margin: float = Field(
        ge=0,
        lt=1,
        description="predictive: the first look comes at last duration x (1 - margin)",
    )
    deploy_mode: Literal["auto", "never"]
    endpoint_name: SageMakerName = Field(description="the production endpoint")
    staging_endpoint_name: SageMakerName | None = Field(
        description="the staging endpoint a model is deployed to and load-checked on before "
        "production; null: no staging stage (straight to production)"
    )
    promotion: Literal["auto", "manual"] = Field(
        description="staging -> production: automatically, or after a person approves "
        "(`sfn-mlops approve EXECUTION`, the task token in the notification)"
    )
    approval_timeout_seconds: int = Field(
        ge=1,
        le=7 * 86400,
        description="manual promotion: how long the approval is waited for (then the run "
        "fails at WaitForApproval, production unchanged)",
    )
    deploy_strategy: DeployStrategy
    load_check: LoadCheck
    model_package_group: SageMakerName
    tags: dict[str, str] = Field(
        default_factory=dict, description="free-form: git_sha, data_version, ..."
    )

    @field_validator("hyperparameters")
    @classmethod
    def _hyperparameter_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in value if not k.replace("_", "").isalnum()]
        if bad:
            raise ValueError(f"hyperparameter names must be alphanumeric/underscore: {bad}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        metrics = (
            CLASSIFICATION_METRICS if self.problem_type != "regression" else REGRESSION_METRICS
        )
        if self.objective.name not in metrics:
            raise ValueError(
                f"objective.name {self.objective.name!r} does not fit problem_type "
                f"{self.problem_type!r}; use one of {list(metrics)}"
            )
        if self.target_column in self.ignore_columns:
            raise ValueError(
                f"ignore_columns lists the target column {self.target_column!r}; remove it"
            )
        if self.max_poll_interval_seconds < self.poll_interval_seconds:
            raise ValueError("max_poll_interval_seconds must be >= poll_interval_seconds")
        if self.max_poll_interval_seconds < self.end_poll_interval_seconds:
            raise ValueError(
                "max_poll_interval_seconds must be >= end_poll_interval_seconds (lower "
                "end_poll_interval_seconds too)"
            )
        if self.staging_endpoint_name == self.endpoint_name:
            raise ValueError(
                f"staging_endpoint_name must differ from endpoint_name ({self.endpoint_name!r}): "
                "staging is a separate endpoint (or null for no staging stage)"
            )
        if self.evaluation is not None and self.evaluation.instance_count != 1:
            raise ValueError(
                f"evaluation.instance_count must be 1, got {self.evaluation.instance_count}: "
                "evaluation scores the challenger and the champion on the whole test split in "
                "one process (an AUC is not a sum over shards), so more instances would each "
                "score everything and cost more; scale evaluation with a larger instance_type"
            )
        if (
            self.training.max_wait_seconds is not None
            and self.training.max_wait_seconds < self.max_runtime_seconds
        ):
            raise ValueError(
                f"training.max_wait_seconds ({self.training.max_wait_seconds}) must be >= "
                f"max_runtime_seconds ({self.max_runtime_seconds}): SageMaker requires "
                "MaxWaitTimeInSeconds >= MaxRuntimeInSeconds; raise it or drop it for the "
                "default (twice max_runtime_seconds)"
            )
        if self.training.max_wait_seconds is not None and not self.training.use_spot:
            raise ValueError(
                "training.max_wait_seconds applies to Spot training only: set "
                "training.use_spot: true, or drop max_wait_seconds"
            )
        return self

    @property
    def spot_max_wait_seconds(self) -> int:
        """Spot's MaxWaitTimeInSeconds: the given value, else twice the runtime (SageMaker
        requires it >= MaxRuntimeInSeconds; the rest is time waiting for Spot capacity)."""
        return self.training.max_wait_seconds or 2 * self.max_runtime_seconds

    @property
    def longest_job_seconds(self) -> int:
        """How long one job may take from start to end (what the poll loop must cover)."""
        spot = self.spot_max_wait_seconds if self.training.use_spot else 0
        return max(self.max_runtime_seconds, spot)

    @property
    def evaluation_compute(self) -> Compute:
        """The compute evaluation runs on (one instance of processing's type by default)."""
        return self.evaluation or Compute(
            instance_type=self.processing.instance_type,
            instance_count=1,
            volume_size_gb=self.processing.volume_size_gb,
        )


class ExecutionRef(Strict):
    """Who is running: from the context object ($$.Execution)."""

    execution_name: str = Field(min_length=1, max_length=80)
    execution_arn: str = Field(min_length=1)


# --- state inputs and outputs ---------------------------------------------------------------


class Candidate(Strict):
    """The model being deployed through the stages: a registry approval's package
    (ValidateInput), or this run's model (DeployRequest gathers it from the run's results)."""

    model_package_arn: str
    model_artifact_uri: S3Uri
    image_uri: str = Field(min_length=1)
    sample_uri: S3Uri  # feature-only rows for the smoke test and the load check
    source: Literal["pipeline", "registry"]  # this run's model, or a registry approval's


class ValidateRequest(Strict):
    payload: dict[str, Any]
    execution_name: str
    execution_arn: str


class StepRequest(Strict):
    """What a job-starting state receives: the resolved config and the execution."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    config: PipelineInput
    execution_name: str
    execution_arn: str


class PollState(Strict):
    """Carried between Wait and Poll: the Choice branches on `status`.

    `elapsed_seconds`: the sum of the waits so far, this one included (the time of the next
    poll since the start); `expected_seconds`: the step's duration as history predicts it,
    looked up once at the start and carried, not re-read per poll; `reason`: why this wait.
    `Restart`: the job (or endpoint update) ended unsuccessfully and is started again as its
    next attempt after `wait_seconds` (a transient SageMaker failure, or a redrive after the
    failure: shared/job_retry.py).
    """

    status: Literal["InProgress", "Completed", "Restart"]
    attempt: int = Field(ge=0)
    wait_seconds: int = Field(ge=1)
    elapsed_seconds: int = Field(default=0, ge=0)
    expected_seconds: int | None = Field(default=None, ge=1)
    reason: str = ""


class Restartable(Strict):
    """A step that starts a job (or an endpoint update) followed by a poll loop."""

    redrive_count: int = Field(
        default=0,
        ge=0,
        description=(
            "the execution's RedriveCount when this step started: set by the definition from "
            "$$.Execution.RedriveCount, so a poll can tell a redrive from its first run"
        ),
    )


class PreprocessOutput(Restartable):
    job_name: SageMakerName
    job_type: Literal["processing"] = "processing"
    reused: bool
    train_uri: S3Uri
    validation_uri: S3Uri
    test_uri: S3Uri
    profile_uri: S3Uri
    sample_uri: S3Uri
    poll: PollState


class TrainOutput(Restartable):
    job_name: SageMakerName
    job_type: Literal["training"] = "training"
    reused: bool
    model_artifact_uri: S3Uri
    poll: PollState


class EvaluateOutput(Restartable):
    job_name: SageMakerName
    job_type: Literal["processing"] = "processing"
    reused: bool
    report_uri: S3Uri
    champion_model_uri: S3Uri | None
    poll: PollState


class RecheckOutput(Restartable):
    """CheckChampion: the champion serving now, taken under the deployment lock. `changed`:
    it is not the one the evaluation compared with, so a re-evaluation job (`job_name`) scores
    the challenger and the new champion on the same test split (`report_uri`)."""

    changed: bool
    evaluated_champion_uri: S3Uri | None  # the champion at evaluation time
    champion_model_uri: S3Uri | None  # the champion serving now
    job_name: SageMakerName | None
    job_type: Literal["processing"] = "processing"
    reused: bool
    report_uri: S3Uri | None
    poll: PollState


class LockState(Strict):
    """AcquireDeployLock: `acquired`, or who holds it and how long to wait before retrying."""

    acquired: bool
    lock_key: str
    owner: str  # the execution ARN holding the lock (this one when acquired)
    reclaimed_from: str | None = None  # a holder that was no longer RUNNING
    attempt: int = Field(ge=0)
    wait_seconds: int = Field(ge=1)


class LockReleaseOutput(Strict):
    lock_key: str
    released: bool  # False: it was not held by this execution (released already)


class PollRequest(Strict):
    job_name: str
    job_type: JobType
    attempt: int = Field(ge=0)
    poll_interval_seconds: int = Field(ge=1)
    max_poll_interval_seconds: int = Field(ge=1)
    max_polls: int = Field(ge=1)
    # the predictive schedule (shared/schedule.py); the defaults are the adaptive schedule
    poll_schedule: PollSchedule = "adaptive"
    end_poll_interval_seconds: int = Field(default=30, ge=1)
    prediction_margin: float = Field(default=0.35, ge=0, lt=1)
    elapsed_seconds: int = Field(default=0, ge=0)  # from the previous PollState
    expected_seconds: int | None = Field(default=None, ge=1)  # ditto
    expected_config_name: str | None = None  # endpoint polls: the config the update must land on
    execution_name: str | None = None  # optional: the logs' correlation id
    # $$.Execution.RedriveCount now, and when the followed job was started (Restartable)
    redrive_count: int = Field(default=0, ge=0)
    started_redrive_count: int = Field(default=0, ge=0)


ApprovalStatus = Literal["Approved", "Rejected", "PendingManualApproval"]


class GateOutput(Strict):
    """The gate's decision. `approval_status` is what the registry records: Approved when
    passed, PendingManualApproval when the challenger meets the threshold but the champion
    could not be scored on the same test split (not comparable: a person decides), else
    Rejected."""

    passed: bool
    deploy: bool
    approval_status: ApprovalStatus
    reasons: list[str]
    metric: str
    challenger: float
    champion: float | None
    data_warnings: list[str] = Field(
        default_factory=list,
        description="from the preprocessing profile, e.g. a data file with no rows",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.deploy and not self.passed:
            raise ValueError("deploy requires passed")
        if self.passed != (self.approval_status == "Approved"):
            raise ValueError("approval_status is Approved exactly when the gate passed")
        return self


class RegisterOutput(Strict):
    model_package_arn: str
    model_package_group: str
    approval_status: ApprovalStatus
    reused: bool


# `register` shadows ABCMeta.register (pydantic models are ABCs), a classmethod nothing calls
# on this model: the field is the state's $.register, so its name is the contract.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", 'Field name "register"', UserWarning)

    class ValidateOutput(Strict):
        config: PipelineInput
        execution_name: str
        execution_arn: str
        #: a registry approval's run (payload `model_package_arn`): the package it deploys; the
        #: run goes straight to the deployment lock and the stages. None: a training run.
        candidate: Candidate | None = None
        #: a registry approval's run: the package as registered ($.register) and the decision to
        #: deploy it, a person's approval ($.gate), so the run's outcome reads like a training
        #: run's (NotifySuccess). None on a training run (RegisterModel and EvaluateModel set them).
        register: RegisterOutput | None = None
        gate: GateOutput | None = None


class DeployOutput(Restartable):
    endpoint_name: SageMakerName
    endpoint_config_name: SageMakerName
    model_name: SageMakerName
    action: Literal["create", "update", "none"]
    job_name: SageMakerName  # the endpoint name, so the generic poll can follow it
    job_type: Literal["endpoint"] = "endpoint"
    poll: PollState
    model_package_arn: str  # what the endpoint serves once the update lands (the candidate)
    sample_uri: S3Uri  # the candidate's rows for the smoke test and the load check


class InvokeRequest(Strict):
    """Inference: rows inline (CSV text or a list of rows) or sample rows from S3."""

    endpoint_name: SageMakerName
    rows: list[list[float | str | None]] | None = None  # raw values; None: missing
    csv: str | None = None
    sample_uri: S3Uri | None = None
    max_rows: int = Field(default=5, ge=1, le=1000)
    execution_name: str | None = None  # optional: the logs' correlation id (smoke test)

    @model_validator(mode="after")
    def _exactly_one_source(self) -> Self:
        given = [n for n in ("rows", "csv", "sample_uri") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of rows, csv, sample_uri (got {given or 'none'})")
        return self


class InvokeOutput(Strict):
    endpoint_name: str
    row_count: int
    predictions: list[float]


# --- requests of the states that read earlier results (the whole state is their payload) ---


class TrainRequest(StepRequest):
    preprocess: PreprocessOutput


class EvaluateRequest(StepRequest):
    preprocess: PreprocessOutput
    train: TrainOutput


class GateRequest(StepRequest):
    evaluate: EvaluateOutput
    preprocess: PreprocessOutput | None = None  # its profile's warnings reach the output
    recheck: RecheckOutput | None = None  # FreshGate: decide again on the re-evaluation


class LockRequest(StepRequest):
    lock: LockState | None = None  # the previous attempt's state (None on the first)


class RecheckRequest(EvaluateRequest):
    evaluate: EvaluateOutput


class RegisterRequest(StepRequest):
    train: TrainOutput
    evaluate: EvaluateOutput
    gate: GateOutput
    preprocess: PreprocessOutput | None = None  # its sample rows: a registry approval's smoke test
    recheck: RecheckOutput | None = None  # set: the fresh decision may change the status


Stage = Literal["staging", "production"]


def _run_candidate(state: dict[str, Any]) -> dict[str, Any] | None:
    """A training run's candidate from its results (None if one is missing: then the request
    fails validation naming `candidate`)."""
    try:
        return {
            "model_package_arn": state["register"]["model_package_arn"],
            "model_artifact_uri": state["train"]["model_artifact_uri"],
            "image_uri": state["config"]["image_uri"],
            "sample_uri": state["preprocess"]["sample_uri"],
            "source": "pipeline",
        }
    except (KeyError, TypeError):
        return None


class DeployRequest(StepRequest):
    """The definition passes ``{stage, state}`` (each deploy state names its stage). The
    candidate is $.candidate (a registry approval's run) or, on a training run, its own model:
    its package, artifact and sample rows, and the configured image."""

    stage: Stage = "production"
    candidate: Candidate
    gate: GateOutput | None = None  # the decision; a registry approval's run: the approval
    # AcquireDeployLock's and CheckChampion's results: UpdateEndpoint checks it still holds the
    # lock (a redrive after the FAILED event released it) against the champion decided on
    lock: LockState | None = None
    recheck: RecheckOutput | None = None

    @model_validator(mode="before")
    @classmethod
    def _the_deployment(cls, data: Any) -> Any:
        if isinstance(data, dict) and "state" in data and isinstance(data["state"], dict):
            data = {**data["state"], "stage": data.get("stage", "production")}
        if isinstance(data, dict) and data.get("candidate") is None:
            data = {**data, "candidate": _run_candidate(data)}
        return data

    @property
    def endpoint_name(self) -> str:
        if self.stage == "staging":
            if self.config.staging_endpoint_name is None:
                raise ValueError("stage staging without a staging_endpoint_name")
            return self.config.staging_endpoint_name
        return self.config.endpoint_name


class LoadCheckRequest(Strict):
    endpoint_name: SageMakerName
    sample_uri: S3Uri
    load_check: LoadCheck
    execution_name: str | None = None


class LoadCheckOutput(Strict):
    """What the load check measured (it raises LoadCheckFailedError over a threshold)."""

    endpoint_name: str
    requests: int
    errors: int
    error_rate: float
    p50_latency_ms: float
    p99_latency_ms: float
    passed: bool


class ApprovalOutput(Strict):
    """SendTaskSuccess's output for WaitForApproval (`sfn-mlops approve EXECUTION`)."""

    approved_by: str = Field(min_length=1)
    reason: str = ""


# --- the evaluation report (written by the container's evaluate step) --------------------------


class ModelScore(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    metrics: dict[str, float | None]  # None: undefined on this test split (e.g. AUC, one class)


class EvaluationReport(BaseModel):
    """evaluation.json: challenger and champion (None if there is none) on the same test split."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    problem_type: ProblemType
    challenger: ModelScore
    champion: ModelScore | None = None
    champion_error: str | None = None  # why a given champion could not be scored


# --- the trigger (not a state: EventBridge invokes it) -----------------------------------------


class TriggerOutput(Strict):
    action: Literal["started", "duplicate", "follow-up", "ignored"]
    reason: str
    execution_name: str | None = None
    execution_arn: str | None = None
    payload: dict[str, Any] | None = None


class MonitorOutput(Strict):
    """The scheduled drift check: the job it started, or why there was nothing to check."""

    action: Literal["started", "duplicate", "skipped"]
    reason: str
    job_name: str | None = None
    report_uri: str | None = None
    window_start: str | None = None
    window_end: str | None = None


# --- execution status change events (EventBridge targets: lock-events, notify) ----------------


class ExecutionStatusChange(BaseModel):
    """`detail` of "Step Functions Execution Status Change" (the fields read here)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, defer_build=True)

    execution_arn: str = Field(alias="executionArn", min_length=1)
    status: str = Field(min_length=1)
    name: str | None = None
    error: str | None = None
    cause: str | None = None
    redrive_count: int | None = Field(default=None, alias="redriveCount")

    @property
    def execution_name(self) -> str:
        return self.name or self.execution_arn.rsplit(":", 1)[-1]


class StatusChangeEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    region: str | None = None
    detail: ExecutionStatusChange


class NotifyOutput(Strict):
    """What the failure notification published (the function's result, for its logs)."""

    message_id: str
    execution_name: str
    status: str
    failed_state: str | None
