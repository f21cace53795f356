"""The live progress: each poll loop is one line per step with its poll count."""

from __future__ import annotations

import io

from history_support import History

from sfn_mlops.history import state_runs
from sfn_mlops.progress import PlainView, collapse_polls


def _polling(polls: int, finished: bool = True) -> History:
    history = History().visit("ValidateInput").visit("StartTraining")
    for _ in range(polls):
        history.visit("IsTrainingComplete", "Choice")
        history.visit("WaitForTraining", "Wait").visit("PollTraining")
    if finished:
        history.visit("IsTrainingComplete", "Choice").visit("StartEvaluation")
    return history


def test_a_poll_loop_collapses_into_one_row_with_its_poll_count() -> None:
    rows = collapse_polls(state_runs(_polling(4).events))

    assert [(r.name, r.polls) for r in rows] == [
        ("ValidateInput", 0),
        ("StartTraining", 0),
        ("PollTraining", 4),
        ("StartEvaluation", 0),
    ]
    loop = rows[2]
    assert loop.status == "succeeded"
    assert loop.seconds is not None
    assert loop.seconds > 4  # from the first Wait to the last poll


def test_plain_view_prints_a_loop_once_when_it_is_over() -> None:
    out = io.StringIO()
    view = PlainView(out=out)
    # while the loop runs, its line is not printed (it may poll again)
    view.update("x", state_runs(_polling(2, finished=False).events))
    assert "PollTraining" not in out.getvalue()
    view.update("x", state_runs(_polling(3, finished=True).events))
    view.stop()

    lines = out.getvalue().splitlines()
    assert [ln.split("]")[1].split()[0] for ln in lines] == [
        "ValidateInput",
        "StartTraining",
        "PollTraining",
        "StartEvaluation",
    ]
    assert "(3 polls)" in lines[2]
    assert "WaitForTraining" not in out.getvalue()


def test_a_restart_wait_ends_the_poll_loop_and_the_restarted_step_is_its_own_row() -> None:
    # Given a poll loop whose job failed, then Restart<Step> (a Wait) back to Start<Step>
    history = _polling(2, finished=False)
    history.visit("IsTrainingComplete", "Choice").visit("RestartTraining", "Wait")
    history.visit("StartTraining").visit("IsTrainingComplete", "Choice")
    history.visit("WaitForTraining", "Wait").visit("PollTraining")

    rows = collapse_polls(state_runs(history.events))

    assert [(r.name, r.polls) for r in rows] == [
        ("ValidateInput", 0),
        ("StartTraining", 0),
        ("PollTraining", 2),
        ("RestartTraining", 0),
        ("StartTraining", 0),
        ("PollTraining", 1),
    ]
    assert rows[3].status == "succeeded"  # the restart wait is over, not shown as running
    assert rows[4].visit == 2


def test_a_run_waiting_for_approval_says_once_what_a_person_runs() -> None:
    # Given a run entered at WaitForApproval (promotion: manual) and not out of it
    history = History().visit("LoadCheckStaging")
    history._add("TaskStateEntered", stateEnteredEventDetails={"name": "WaitForApproval"})
    history._add("TaskScheduled")
    out = io.StringIO()
    view = PlainView(out=out)
    arn = "arn:aws:states:us-east-1:1:execution:sfn-mlops-pipeline:man1"

    for _ in range(3):  # the CLI polls the history while the wait lasts
        view.update(arn, state_runs(history.events))

    hints = [ln for ln in out.getvalue().splitlines() if "[wait]" in ln]
    assert len(hints) == 1
    assert "WaitForApproval" in hints[0]
    assert "sfn-mlops approve man1" in hints[0]
    assert "sfn-mlops reject man1 --reason" in hints[0]


def test_no_approval_hint_once_the_wait_is_over() -> None:
    history = History().visit("LoadCheckStaging").visit("WaitForApproval").visit("Promote")
    out = io.StringIO()
    PlainView(out=out).update("arn:x:man1", state_runs(history.events))

    assert "[wait]" not in out.getvalue()


def test_an_approval_timeout_is_explained_where_step_functions_gives_no_cause() -> None:
    from sfn_mlops.history import failure

    history = History().visit("LoadCheckStaging")
    history._add("TaskStateEntered", stateEnteredEventDetails={"name": "WaitForApproval"})
    history._add("TaskScheduled")
    history._add("TaskTimedOut", taskTimedOutEventDetails={"error": "States.Timeout"})
    history._add("ExecutionFailed", executionFailedEventDetails={"error": "States.Timeout"})

    state, error, cause = failure(history.events) or ("", "", "")

    assert (state, error) == ("WaitForApproval", "States.Timeout")
    assert "approval_timeout_seconds" in cause
    assert "production unchanged" in cause
