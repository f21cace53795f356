"""CloudWatch in the local cloud (sfn_mlops/local/cloudwatch.py): a real endpoint publishes
SageMaker's invocation metrics, alarms on them change state like AWS's, and the state
change reaches an EventBridge rule's SQS target."""

from __future__ import annotations

import datetime as dt
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sfn_container.data import write_dataset
from sfn_container.paths import OptMl
from sfn_container.preprocess import PreprocessConfig, preprocess
from sfn_container.train import TrainConfig, train

from sfn_mlops.local.cloud import LocalCloud
from shared import resources

pytestmark = pytest.mark.integration

BUCKET = "alarms-bucket"
ROLE = "arn:aws:iam::123456789012:role/alarms"
VARIANT = resources.ENDPOINT_VARIANT_NAME


def test_the_evaluator_stops_with_the_cloud(tmp_path: Path) -> None:
    # first in the module: one local cloud per process, and the module's starts after this
    with LocalCloud(workdir=tmp_path) as c:
        evaluator = c.alarms
        assert evaluator is not None
        assert evaluator.running
    assert not evaluator.running


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with LocalCloud(workdir=tmp_path_factory.mktemp("alarms"), alarm_period_scale=0.05) as c:
        c.client("s3").create_bucket(Bucket=BUCKET)
        yield c


@pytest.fixture(scope="module")
def endpoint(cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real endpoint serving a model trained here (in process, as the pipeline would)."""
    root = tmp_path_factory.mktemp("model")
    opt_ml = OptMl(root / "opt_ml")
    write_dataset("breast_cancer", root / "raw")
    preprocess(root / "raw", root / "splits", PreprocessConfig())
    for channel in ("train", "validation"):
        opt_ml.channel(channel).mkdir(parents=True)
        (root / "splits" / channel / f"{channel}.parquet").rename(
            opt_ml.channel(channel) / f"{channel}.parquet"
        )
    train(opt_ml, TrainConfig.from_hyperparameters({"num_round": "5", "max_depth": "2"}))
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for path in Path(opt_ml.model_dir).iterdir():
            tar.add(path, arcname=path.name)
    cloud.client("s3").put_object(Bucket=BUCKET, Key="model.tar.gz", Body=archive.getvalue())
    sm = cloud.client("sagemaker")
    sm.create_model(
        ModelName="m",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": "local/sfn-mlops:latest",
            "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz",
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName="m-config",
        ProductionVariants=[
            {
                "VariantName": VARIANT,
                "ModelName": "m",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName="ep", EndpointConfigName="m-config")
    status = cloud.wait_for(
        lambda: (
            (s := sm.describe_endpoint(EndpointName="ep")["EndpointStatus"]) != "Creating" and s
        ),
        timeout=60,
    )
    assert status == "InService"
    sample = (root / "splits" / "sample" / "sample.csv").read_text().strip().splitlines()
    return {"name": "ep", "row": sample[1]}


def _dims(endpoint: str) -> list[dict[str, str]]:
    return [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": VARIANT}]


def _stats(cloud: LocalCloud, metric: str, endpoint: str) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    points = cloud.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName=metric,
        Dimensions=_dims(endpoint),
        StartTime=now - dt.timedelta(minutes=10),
        EndTime=now + dt.timedelta(minutes=1),
        Period=3600,
        Statistics=["Sum", "SampleCount", "Maximum"],
    )["Datapoints"]
    assert len(points) == 1, (metric, points)
    return dict(points[0])


def test_invocations_publish_sagemakers_metrics(
    cloud: LocalCloud, endpoint: dict[str, Any]
) -> None:
    runtime = cloud.client("sagemaker-runtime")
    for _ in range(2):
        runtime.invoke_endpoint(EndpointName="ep", ContentType="text/csv", Body=endpoint["row"])
    with pytest.raises(ClientError) as bad:  # the model answers 400: a 4XX, not a 5XX
        runtime.invoke_endpoint(EndpointName="ep", ContentType="text/csv", Body=b"1,2,3")
    assert bad.value.response["OriginalStatusCode"] == 400

    assert _stats(cloud, "Invocations", "ep")["Sum"] == 3
    assert _stats(cloud, "InvocationsPerInstance", "ep")["Sum"] == 3
    assert _stats(cloud, "Invocation4XXErrors", "ep")["Sum"] == 1
    five = _stats(cloud, "Invocation5XXErrors", "ep")
    assert (five["Sum"], five["SampleCount"]) == (0, 3)  # zeros are published, as SageMaker does
    latency = _stats(cloud, "ModelLatency", "ep")
    assert latency["Unit"] == "Microseconds"
    assert latency["SampleCount"] == 3
    assert 0 < latency["Maximum"] < 60e6
    assert _stats(cloud, "OverheadLatency", "ep")["Unit"] == "Microseconds"
    listed = cloud.client("cloudwatch").list_metrics(
        Namespace="AWS/SageMaker", MetricName="ModelLatency"
    )["Metrics"]
    assert {tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"])) for m in listed} == {
        (("EndpointName", "ep"), ("VariantName", VARIANT))
    }


def _alarm(cloud: LocalCloud, name: str, endpoint: str, treat: str, **extra: Any) -> None:
    cloud.client("cloudwatch").put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Dimensions=_dims(endpoint),
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData=treat,
        **extra,
    )


def _state(cloud: LocalCloud, name: str) -> dict[str, Any]:
    return dict(cloud.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0])


def test_5xx_alarm_goes_to_alarm_and_back_to_ok_and_the_event_reaches_sqs(
    cloud: LocalCloud,
) -> None:
    # GIVEN a rule sending this alarm's state changes to a queue, and the endpoint's 5xx alarm
    sqs, events = cloud.client("sqs"), cloud.client("events")
    url = sqs.create_queue(QueueName="alarm-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    pattern = {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "detail": {"alarmName": ["ep-b-5xx"]},
    }
    events.put_rule(Name="alarm-changes", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="alarm-changes", Targets=[{"Id": "q", "Arn": arn}])

    # WHEN the endpoint answers 5xx (its metric, as the endpoint publishes it), with the alarm
    # created after the datapoint so that no evaluation sees the alarm without it
    cloud.client("cloudwatch").put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[{"MetricName": "Invocation5XXErrors", "Dimensions": _dims("ep-b"), "Value": 2}],
    )
    _alarm(cloud, "ep-b-5xx", "ep-b", "notBreaching")

    # THEN ALARM, with AWS's reason; then OK once a period passes without errors
    assert cloud.alarms is not None
    reason = cloud.alarms.wait_for_state("ep-b-5xx", "ALARM", timeout=10)
    assert reason.startswith("Threshold Crossed: 1 datapoint [2.0 (")
    assert reason.endswith("was greater than or equal to the threshold (1.0).")
    assert json.loads(_state(cloud, "ep-b-5xx")["StateReasonData"])["recentDatapoints"] == [2.0]
    cloud.alarms.wait_for_state("ep-b-5xx", "OK", timeout=10)

    received: list[dict[str, Any]] = []

    def two_events() -> bool:
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            received.append(json.loads(m["Body"]))
        return len(received) >= 2

    cloud.wait_for(two_events, timeout=10)
    first, second = received
    assert first["source"] == "aws.cloudwatch"
    assert first["detail-type"] == "CloudWatch Alarm State Change"
    assert first["resources"] == [_state(cloud, "ep-b-5xx")["AlarmArn"]]
    detail = first["detail"]
    assert detail["alarmName"] == "ep-b-5xx"
    assert detail["state"]["value"] == "ALARM"
    assert detail["state"]["reason"] == reason
    assert detail["previousState"]["value"] == "INSUFFICIENT_DATA"  # as AWS starts an alarm
    metric = detail["configuration"]["metrics"][0]["metricStat"]
    assert metric["metric"] == {
        "namespace": "AWS/SageMaker",
        "name": "Invocation5XXErrors",
        "dimensions": {"EndpointName": "ep-b", "VariantName": VARIANT},
    }
    assert (metric["period"], metric["stat"]) == (60, "Sum")
    assert (second["detail"]["previousState"]["value"], second["detail"]["state"]["value"]) == (
        "ALARM",
        "OK",
    )


def test_treat_missing_data_without_any_datapoint(cloud: LocalCloud) -> None:
    assert cloud.alarms is not None
    for treat in ("missing", "breaching", "notBreaching"):
        _alarm(cloud, f"ep-none-{treat}", "ep-none", treat)
    cloud.alarms.evaluate_now()

    assert cloud.alarms.state("ep-none-missing") == "INSUFFICIENT_DATA"
    # no transition, so no new reason (AWS keeps its creation reason too)
    assert _state(cloud, "ep-none-missing")["StateReason"] == "Unchecked: Initial alarm creation"
    assert cloud.alarms.state("ep-none-breaching") == "ALARM"
    assert cloud.alarms.state("ep-none-notBreaching") == "OK"
    # an update keeps the state (as AWS does), it does not restart at INSUFFICIENT_DATA
    _alarm(cloud, "ep-none-breaching", "ep-none", "breaching", AlarmDescription="updated")
    assert cloud.alarms.state("ep-none-breaching") == "ALARM"


def test_alarm_action_publishes_to_sns(cloud: LocalCloud) -> None:
    sns, sqs = cloud.client("sns"), cloud.client("sqs")
    topic = sns.create_topic(Name="alarm-topic")["TopicArn"]
    url = sqs.create_queue(QueueName="alarm-inbox")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn)
    _alarm(cloud, "ep-sns", "ep-sns", "breaching", AlarmActions=[topic])

    assert cloud.alarms is not None
    cloud.alarms.wait_for_state("ep-sns", "ALARM", timeout=10)

    messages = cloud.wait_for(lambda: sqs.receive_message(QueueUrl=url).get("Messages"), timeout=10)
    body = json.loads(json.loads(messages[0]["Body"])["Message"])
    assert (body["AlarmName"], body["NewStateValue"], body["OldStateValue"]) == (
        "ep-sns",
        "ALARM",
        "INSUFFICIENT_DATA",
    )
    assert body["Trigger"]["MetricName"] == "Invocation5XXErrors"
