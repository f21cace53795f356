"""The report builder (sfn_mlops/report): state outcomes over redrives, the figures per
problem type, the gate and metrics, and that the page is self-contained."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import numpy as np
import pytest
from history_support import T0, History
from sfn_container.metrics import evaluate

from sfn_mlops.report.collect import JobRun, ReportData, state_outcomes
from sfn_mlops.report.page import console_links, render, write_index
from shared import resources

DEFINITION = json.loads(resources.ASL_PATH.read_text())


def _evaluation(problem_type: str, champion: bool = True) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    y = (
        rng.integers(0, 2, 200).astype(float)
        if problem_type != "regression"
        else rng.normal(100, 20, 200)
    )
    out: dict[str, Any] = {"problem_type": problem_type, "test_rows": 200, "plots": {}}
    out["bootstrap"] = {"resamples": 5, "seed": 0}
    for role, noise in (("challenger", 0.3), ("champion", 0.5)):
        if role == "champion" and not champion:
            out["champion"], out["plots"]["champion"] = None, None
            continue
        if problem_type == "regression":
            p = y + rng.normal(0, 20 * noise, 200)
        else:
            p = np.clip(y * 0.6 + rng.normal(0.2, noise, 200), 0, 1)
        result = evaluate(problem_type, y, p, resamples=5)
        out["plots"][role] = result.pop("plot")
        result["model"] = {"feature_importance": {"mean radius": 3.0, "texture": 1.0, "x": 0.0}}
        out[role] = result
    return out


def _data(problem_type: str = "binary_classification", **kw: Any) -> ReportData:
    history = History().visit("ValidateInput").visit("StartPreprocessing")
    for _ in range(3):
        history.visit("IsPreprocessingComplete", "Choice")
        history.visit("WaitForPreprocessing", "Wait").visit("PollPreprocessing")
    gate = {
        "passed": True,
        "deploy": True,
        "approval_status": "Approved",
        "reasons": ["auc 0.97 beats the champion's 0.95 by more than 0.0"],
        "metric": "auc",
        "challenger": 0.97,
        "champion": 0.95,
    }
    kw.setdefault("evaluation", _evaluation(problem_type))
    return ReportData(
        describe={
            "name": "img-abc",
            "executionArn": "arn:aws:states:eu-west-1:1:execution:sfn-mlops-pipeline:img-abc",
            "status": "SUCCEEDED",
            "startDate": T0,
            "stopDate": T0 + dt.timedelta(seconds=60),
        },
        events=history.events,
        definition=DEFINITION,
        state={"config": {"problem_type": problem_type, "target_column": "target"}, "gate": gate},
        profile={
            "target_column": "target",
            "rows": {"total": 10, "train": 7, "validation": 1, "test": 2},
            "columns": {
                "x": {"count": 10, "missing": 1, "mean": 0.5, "std": 0.1, "min": 0.0, "max": 1.0}
            },
        },
        jobs=[
            JobRun(
                "preprocess",
                "processing",
                "img-abc-preprocess-1",
                "Completed",
                T0 + dt.timedelta(seconds=2),
                T0 + dt.timedelta(seconds=9),
            )
        ],
        **kw,
    )


def _plot_ids(html: str) -> set[str]:
    return set(re.findall(r'data-plot="([^"]+)"', html))


def test_a_state_that_failed_and_then_succeeded_on_redrive_is_recovered() -> None:
    # Given an execution that failed at StartTraining and was redriven from there
    events = (
        History()
        .visit("ValidateInput")
        .visit("StartTraining", error="ResourceLimitExceeded")
        .redrive()
        .visit("StartTraining")
        .events
    )
    # When the outcomes are read
    outcomes = state_outcomes(events, DEFINITION)
    # Then the redriven state is "recovered", the others as they ended or never ran
    assert outcomes["StartTraining"].status == "recovered"
    assert outcomes["StartTraining"].visits == 2
    assert outcomes["StartTraining"].failed_visits == 1
    assert outcomes["StartTraining"].error == "ResourceLimitExceeded"
    assert outcomes["ValidateInput"].status == "succeeded"
    assert outcomes["SmokeTest"].status == "not run"
    assert set(outcomes) == set(DEFINITION["States"])


def test_a_state_whose_last_visit_failed_is_failed() -> None:
    events = History().visit("ValidateInput", error="ValidationError").events
    assert state_outcomes(events, DEFINITION)["ValidateInput"].status == "failed"


def test_classification_report_draws_every_figure_and_is_self_contained() -> None:
    html = render(_data())

    assert _plot_ids(html) == {
        "workflow",
        "timeline",
        "roc",
        "pr",
        "confusion-challenger",
        "confusion-champion",
        "feature-importance",
    }
    # self-contained: no script, nothing loaded from anywhere (local: no console links)
    assert "<script" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<link" not in html
    # the gate and its reasons; champion and challenger side by side
    assert "auc 0.97 beats the champion" in html
    assert re.search(r"<th>champion</th><th>challenger</th>", html)
    assert "img-abc-preprocess-1" in html


def test_regression_report_draws_predicted_vs_actual_and_residuals() -> None:
    html = render(_data("regression"))

    assert _plot_ids(html) == {
        "workflow",
        "timeline",
        "predicted-vs-actual",
        "residuals",
        "feature-importance",
    }
    assert "rmse" in html


def test_without_a_champion_the_report_says_so() -> None:
    html = render(_data(evaluation=_evaluation("binary_classification", champion=False)))
    assert "confusion-champion" not in _plot_ids(html)
    assert "no champion" in html


def test_a_failed_execution_without_evaluation_still_reports_where_it_failed() -> None:
    data = _data(evaluation=None)
    data.describe["status"] = "FAILED"
    data.events = History().visit("ValidateInput", error="ValidationError").events
    data.state = {"config": {}}
    data.problems.append("no evaluation: the execution did not get to write it")

    html = render(data)

    assert "Failed at ValidateInput" in html
    assert "ValidationError" in html
    assert "did not reach the gate" in html
    assert _plot_ids(html) == {"workflow", "timeline"}


@pytest.mark.parametrize("on_aws", [True, False])
def test_console_links_only_on_aws(on_aws: bool) -> None:
    data = _data(on_aws=on_aws, region="eu-west-1")
    links = console_links(data)
    if not on_aws:
        assert links == {}
        return
    assert links["execution"].startswith(
        "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/"
    )
    assert links["img-abc-preprocess-1"].endswith("#/processing-jobs/img-abc-preprocess-1")
    assert links["execution"] in render(data)


def test_index_links_each_execution_report(tmp_path: Any) -> None:
    out = write_index(
        tmp_path / "index.html",
        [
            {
                "name": "img-1",
                "trigger": "ECR image push",
                "status": "SUCCEEDED",
                "seconds": 3.0,
                "gate": None,
                "failure": None,
                "report": "img-1/report.html",
            }
        ],
        "Summary <text>",
    )
    html = out.read_text()
    assert 'href="img-1/report.html"' in html
    assert "Summary &lt;text&gt;" in html  # escaped
