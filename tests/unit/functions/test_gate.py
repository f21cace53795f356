"""gate (functions/gate): the evaluation report -> passed / deploy, with reasons."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fn_support import BUCKET, EXECUTION, config, make_bucket, state

from functions.gate.handler import lambda_handler as gate_handler
from functions.gate.logic import decide
from shared import aws
from shared.errors import ArtifactError
from shared.models import EvaluationReport, GateOutput, Objective

REPORT_KEY = f"runs/{EXECUTION}/evaluate/evaluation/evaluation.json"
AUC = Objective(name="auc", goal="maximize", threshold=0.8, min_improvement=0.01)
RMSE = Objective(name="rmse", goal="minimize", threshold=5.0, min_improvement=0.1)


def report(challenger: float | None, champion: float | None = None, **extra: Any) -> dict[str, Any]:
    metric = extra.pop("metric", "auc")
    return {
        "problem_type": extra.pop("problem_type", "binary_classification"),
        "challenger": {"metrics": {metric: challenger, "accuracy": 0.9}},
        "champion": None if champion is None else {"metrics": {metric: champion}},
        **extra,
    }


def gate_state(**config_overrides: Any) -> dict[str, Any]:
    evaluate = {
        "job_name": "eval-1",
        "reused": False,
        "report_uri": f"s3://{BUCKET}/{REPORT_KEY}",
        "champion_model_uri": None,
        "poll": {"status": "Completed", "attempt": 2, "wait_seconds": 1},
    }
    return state(config=config(**config_overrides), evaluate=evaluate)


def put_report(body: dict[str, Any] | str) -> None:
    make_bucket()
    text = body if isinstance(body, str) else json.dumps(body)
    aws.s3().put_object(Bucket=BUCKET, Key=REPORT_KEY, Body=text.encode())


def test_first_model_above_threshold_is_deployed(moto: None, context: Any) -> None:
    # GIVEN a report with a challenger above the threshold and no champion
    put_report(report(0.93))
    # WHEN the gate runs
    out = GateOutput.model_validate(gate_handler(gate_state(), context))
    # THEN it passes and deploys, and says why
    assert (out.passed, out.deploy) == (True, True)
    assert (out.metric, out.challenger, out.champion) == ("auc", 0.93, None)
    assert any("no champion" in r for r in out.reasons)


def test_below_threshold_is_rejected(moto: None, context: Any) -> None:
    put_report(report(0.7))
    out = GateOutput.model_validate(gate_handler(gate_state(), context))
    assert (out.passed, out.deploy) == (False, False)
    assert any("threshold not met" in r for r in out.reasons)


def test_deploy_mode_never_passes_without_deploying(moto: None, context: Any) -> None:
    put_report(report(0.95))
    out = GateOutput.model_validate(gate_handler(gate_state(deploy_mode="never"), context))
    assert (out.passed, out.deploy) == (True, False)
    assert any("deploy_mode is 'never'" in r for r in out.reasons)


@pytest.mark.parametrize(
    ("challenger", "champion", "passed"),
    [(0.95, 0.90, True), (0.905, 0.90, False), (0.91, 0.90, True), (0.85, 0.90, False)],
)
def test_champion_must_be_beaten_by_min_improvement(
    challenger: float, champion: float, passed: bool
) -> None:
    # GIVEN a champion and min_improvement 0.01 (maximize AUC)
    rep = EvaluationReport.model_validate(report(challenger, champion))
    # WHEN / THEN the challenger passes only when it is at least 0.01 better
    out = decide(rep, AUC, "auto")
    assert out.passed is passed
    assert out.champion == champion
    if not passed:
        assert any("champion not beaten" in r for r in out.reasons)


@pytest.mark.parametrize(
    ("challenger", "champion", "passed"),
    [(3.0, 3.5, True), (3.45, 3.5, False), (4.0, 3.5, False), (6.0, None, False)],
)
def test_minimized_metric_respects_direction(
    challenger: float, champion: float | None, passed: bool
) -> None:
    # GIVEN an RMSE objective (lower is better; threshold 5, min_improvement 0.1)
    rep = EvaluationReport.model_validate(
        report(challenger, champion, metric="rmse", problem_type="regression")
    )
    # WHEN / THEN lower wins by at least 0.1, and the threshold is an upper bound
    assert decide(rep, RMSE, "auto").passed is passed


def test_undefined_champion_metric_is_nothing_to_beat() -> None:
    rep = EvaluationReport.model_validate(
        report(0.9, None) | {"champion": {"metrics": {"auc": None}}}
    )
    out = decide(rep, AUC, "auto")
    assert out.passed
    assert any("undefined" in r for r in out.reasons)


def test_champion_that_cannot_score_the_split_awaits_manual_approval() -> None:
    # GIVEN a challenger above the threshold and a champion that could not score this split
    rep = EvaluationReport.model_validate(
        report(0.95, None, champion_error="ValueError: model expects 30 features, data has 31")
    )
    # WHEN the gate decides
    out = decide(rep, AUC, "auto")
    # THEN nothing deploys on its own: the package awaits a person's approval, and says why
    assert (out.passed, out.deploy, out.approval_status) == (False, False, "PendingManualApproval")
    assert any("not comparable" in r and "30 features" in r for r in out.reasons)


def test_champion_that_cannot_score_and_a_weak_challenger_is_rejected() -> None:
    rep = EvaluationReport.model_validate(report(0.5, None, champion_error="schema changed"))
    out = decide(rep, AUC, "auto")
    assert (out.passed, out.approval_status) == (False, "Rejected")


def test_undefined_challenger_metric_is_an_artifact_error() -> None:
    rep = EvaluationReport.model_validate(report(None))
    with pytest.raises(ArtifactError, match="undefined on the test split"):
        decide(rep, AUC, "auto")


def test_report_without_the_objective_metric_is_an_artifact_error() -> None:
    rep = EvaluationReport.model_validate(report(0.9, metric="f1"))
    with pytest.raises(ArtifactError, match="has no 'auc'"):
        decide(rep, AUC, "auto")


def test_missing_report_is_an_artifact_error(moto: None, context: Any) -> None:
    make_bucket()
    with pytest.raises(ArtifactError, match="does not exist"):
        gate_handler(gate_state(), context)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("{not json", "is not JSON"),
        (json.dumps({"problem_type": "binary_classification"}), "challenger: "),
        (json.dumps(report(0.9, problem_type="regression")), "differs from"),
    ],
)
def test_unreadable_report_is_an_artifact_error(
    moto: None, context: Any, body: str, problem: str
) -> None:
    put_report(body)
    with pytest.raises(ArtifactError, match=problem):
        gate_handler(gate_state(), context)


def test_container_report_extras_are_ignored(moto: None, context: Any) -> None:
    # GIVEN the container's full report (Model Quality sections, plots) around the flat metrics
    body = report(0.97, 0.95) | {
        "target_column": "target",
        "plots": {"challenger": {}},
        "champion_error": None,
    }
    body["challenger"]["binary_classification_metrics"] = {"auc": {"value": 0.97}}
    put_report(body)
    # WHEN / THEN the gate reads the flat metrics
    out = GateOutput.model_validate(gate_handler(gate_state(), context))
    assert (out.challenger, out.champion, out.passed) == (0.97, 0.95, True)


def test_preprocessing_warnings_reach_the_gates_output(moto: None, context: Any) -> None:
    # GIVEN a run whose preprocessing profile warns about a header-only data file
    put_report(report(0.93))
    base = f"s3://{BUCKET}/runs/{EXECUTION}/preprocess"
    warning = "raw/empty.csv has a header and no data rows (ignored)"
    aws.s3().put_object(
        Bucket=BUCKET,
        Key=f"runs/{EXECUTION}/preprocess/profile/profile.json",
        Body=json.dumps({"warnings": [warning]}).encode(),
    )
    preprocess = {
        "job_name": "pre-1",
        "reused": False,
        **{f"{n}_uri": f"{base}/{n}" for n in ("train", "validation", "test", "profile")},
        "sample_uri": f"{base}/sample",
        "poll": {"status": "Completed", "attempt": 1, "wait_seconds": 1},
    }
    # WHEN the gate runs on the whole state
    out = GateOutput.model_validate(
        gate_handler(gate_state() | {"preprocess": preprocess}, context)
    )
    # THEN the warning is in its output (the execution's output holds $.gate)
    assert out.data_warnings == [warning]
    assert out.deploy is True


EVEN = Objective(name="auc", goal="maximize", threshold=0.8, min_improvement=0.0)


@pytest.mark.parametrize(
    ("challenger", "champion", "objective", "passed"),
    [
        # float noise (the 1.11e-16 "worse") is a tie, in both directions
        (0.998775, 0.998775 + 1.11e-16, EVEN, False),
        (0.998775 + 1.11e-16, 0.998775, EVEN, False),
        # min_improvement 0 means strictly better: a real gain deploys, an equal model does not
        (0.998776, 0.998775, EVEN, True),
        # a gain equal to min_improvement (up to float noise) meets it
        (0.85 + 0.01, 0.85, AUC, True),
        (0.85 + 0.01 - 2e-12, 0.85, AUC, True),
        (0.85 + 0.0099, 0.85, AUC, False),
    ],
)
def test_ties_are_decided_with_a_relative_tolerance(
    challenger: float, champion: float, objective: Objective, passed: bool
) -> None:
    # GIVEN a champion and a challenger that differ by noise, by the margin, or by less
    rep = EvaluationReport.model_validate(report(challenger, champion))
    # WHEN the gate decides
    out = decide(rep, objective, "auto")
    # THEN noise is equality, and equality never beats the champion under min_improvement 0
    assert out.passed is passed
    if challenger != champion and abs(challenger - champion) < 1e-12:
        assert any("equal within relative 1e-09" in r for r in out.reasons)


def test_equal_minimized_metric_is_a_tie() -> None:
    rmse = Objective(name="rmse", goal="minimize", threshold=5.0, min_improvement=0.0)
    rep = EvaluationReport.model_validate(
        report(1.0 + 1e-15, 1.0, metric="rmse", problem_type="regression")
    )
    out = decide(rep, rmse, "auto")
    assert (out.passed, out.approval_status) == (False, "Rejected")
    assert any("needs strictly better" in r for r in out.reasons)


def test_fresh_gate_decides_on_the_reevaluation_and_says_so(moto: None, context: Any) -> None:
    # GIVEN a re-evaluation against a newer champion that is better than the challenger
    make_bucket()
    recheck_key = REPORT_KEY.replace("/evaluate/", "/recheck/")
    aws.s3().put_object(Bucket=BUCKET, Key=REPORT_KEY, Body=json.dumps(report(0.9)).encode())
    aws.s3().put_object(Bucket=BUCKET, Key=recheck_key, Body=json.dumps(report(0.9, 0.95)).encode())
    newer = f"s3://{BUCKET}/runs/newer/train/job/output/model.tar.gz"
    event = gate_state() | {
        "recheck": {
            "changed": True,
            "evaluated_champion_uri": None,
            "champion_model_uri": newer,
            "job_name": "recheck-1",
            "reused": False,
            "report_uri": f"s3://{BUCKET}/{recheck_key}",
            "poll": {"status": "Completed", "attempt": 1, "wait_seconds": 1},
        }
    }
    # WHEN FreshGate runs
    out = GateOutput.model_validate(gate_handler(event, context))
    # THEN it does not deploy, and says it compared with the newer champion, and why
    assert (out.deploy, out.approval_status, out.champion) == (False, "Rejected", 0.95)
    assert "compared again with the newer champion" in out.reasons[0]
    assert newer in out.reasons[0]
    assert any("champion not beaten" in r for r in out.reasons)
