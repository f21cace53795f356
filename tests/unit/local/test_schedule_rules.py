"""EventBridge schedule rules in the local cloud: a rule with a ScheduleExpression and no
EventPattern receives only its own Scheduled Event (moto's pattern-less rule matches every
event), and one tick of the schedule delivers that event in AWS's shape to its targets."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sfn_mlops.local import events
from sfn_mlops.local.cloud import _Patches

REGION, ACCOUNT = "us-east-1", "123456789012"
MONITOR = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:monitor"
TRIGGER = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:trigger"


@pytest.fixture
def router(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[events.EventRouter, list[Any]]]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    calls: list[tuple[str, dict[str, Any]]] = []

    def invoke(arn: str, event: dict[str, Any]) -> tuple[Any, str | None]:
        calls.append((arn, event))
        return {"action": "started"}, None

    patches = _Patches()
    with mock_aws():
        router = events.EventRouter(invoke)
        events.install(patches, router)
        try:
            client = boto3.client("events", region_name=REGION)
            client.put_rule(Name="check", ScheduleExpression="rate(1 hour)", State="ENABLED")
            client.put_targets(Rule="check", Targets=[{"Id": "monitor", "Arn": MONITOR}])
            client.put_rule(
                Name="pushes",
                EventPattern=json.dumps({"source": ["aws.ecr"]}),
                State="ENABLED",
            )
            client.put_targets(Rule="pushes", Targets=[{"Id": "trigger", "Arn": TRIGGER}])
            yield router, calls
        finally:
            patches.undo()


def test_a_schedule_rule_never_receives_other_events(
    router: tuple[events.EventRouter, list[Any]],
) -> None:
    r, calls = router
    # WHEN events arrive: one put by a caller, one emitted (an ECR push, as PutImage does)
    boto3.client("events", region_name=REGION).put_events(
        Entries=[{"Source": "my.app", "DetailType": "Thing", "Detail": "{}"}]
    )
    events.route_event(events.ecr_push_event(ACCOUNT, REGION, "repo", "sha256:ab", "latest"),
                       ACCOUNT, REGION)  # fmt: skip
    assert r.wait_idle(10)
    # THEN only the rule whose pattern matches is delivered; the schedule rule is not
    assert [(d.rule, d.target_arn) for d in r.deliveries] == [("pushes", TRIGGER)]
    assert [arn for arn, _ in calls] == [TRIGGER]


def test_a_tick_delivers_the_scheduled_event_in_aws_shape(
    router: tuple[events.EventRouter, list[Any]],
) -> None:
    r, calls = router
    # WHEN the schedule ticks
    (delivery,) = events.fire_schedule(r, "check", ACCOUNT, REGION)
    assert delivery.done.wait(10)
    # THEN the monitor target gets EventBridge's Scheduled Event, and its answer is kept
    ((arn, event),) = calls
    assert arn == MONITOR
    assert (event["source"], event["detail-type"], event["detail"]) == (
        "aws.events", "Scheduled Event", {}
    )  # fmt: skip
    assert event["resources"] == [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/check"]
    assert (event["account"], event["region"], event["version"]) == (ACCOUNT, REGION, "0")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
    assert delivery.payload == {"action": "started"}


def test_only_an_enabled_schedule_rule_ticks(
    router: tuple[events.EventRouter, list[Any]],
) -> None:
    r, calls = router
    with pytest.raises(ValueError, match="pushes is not a schedule rule"):
        events.fire_schedule(r, "pushes", ACCOUNT, REGION)
    boto3.client("events", region_name=REGION).disable_rule(Name="check")
    with pytest.raises(ValueError, match="check is DISABLED"):
        events.fire_schedule(r, "check", ACCOUNT, REGION)
    assert calls == []
