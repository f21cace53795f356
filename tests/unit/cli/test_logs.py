"""`sfn-mlops logs`: which log groups, streams and time windows belong to an execution."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from history_support import T0, History

from sfn_mlops.aws import UserError
from sfn_mlops.local.stack import render_definition
from sfn_mlops.logs import PROCESSING_GROUP, TRAINING_GROUP, _is_execution_line, sources
from shared import resources

ARNS = {
    spec.key: f"arn:aws:lambda:us-east-1:1:function:{spec.function_name}"
    for spec in resources.FUNCTIONS
}
DEFINITION = json.loads(render_definition(ARNS, "arn:aws:sns:us-east-1:1:topic"))
FN = {spec.key: spec.function_name for spec in resources.FUNCTIONS}


def _execution() -> tuple[list[dict], dict]:
    history = History().visit("ValidateInput").visit("StartPreprocessing")
    history.visit("WaitForPreprocessing", "Wait").visit("PollPreprocessing")
    history.visit("StartTraining")
    output = {
        "preprocess": {"job_name": "x-preprocess-abc-1", "job_type": "processing"},
        "train": {"job_name": "x-train-abc-2", "job_type": "training"},
    }
    describe = {
        "name": "x",
        "startDate": T0,
        "stopDate": T0 + dt.timedelta(seconds=60),
        "output": json.dumps(output),
    }
    return history.events, describe


def test_an_execution_reads_its_functions_and_every_attempt_of_its_jobs() -> None:
    events, describe = _execution()

    found = {s.group: s for s in sources(DEFINITION, events, describe)}

    assert f"/aws/lambda/{FN['validate']}" in found
    assert f"/aws/lambda/{FN['poll']}" in found
    assert found[f"/aws/lambda/{FN['validate']}"].correlation_id == "x"
    assert found[PROCESSING_GROUP].stream_prefixes == ("x-preprocess-abc-",)
    assert found[TRAINING_GROUP].stream_prefixes == ("x-train-abc-",)  # attempts 1, 2, ...
    # a function no state of this execution ran is not read
    assert f"/aws/lambda/{FN['deploy']}" not in found


def test_one_state_reads_its_function_while_it_ran_and_its_step_job() -> None:
    events, describe = _execution()

    found = sources(DEFINITION, events, describe, state="PollPreprocessing")

    assert {s.group for s in found} == {f"/aws/lambda/{FN['poll']}", PROCESSING_GROUP}
    poll = next(s for s in found if s.group.startswith("/aws/lambda/"))
    assert [w[2] for w in poll.windows] == ["PollPreprocessing"]


def test_an_unknown_state_names_the_states() -> None:
    events, describe = _execution()
    with pytest.raises(UserError, match=r"no state 'Nope'.*ValidateInput"):
        sources(DEFINITION, events, describe, state="Nope")


def test_lambda_lines_of_other_executions_are_left_out() -> None:
    mine = json.dumps({"message": "input valid", "correlation_id": "x"})
    theirs = json.dumps({"message": "input valid", "correlation_id": "y"})
    assert _is_execution_line(mine, "x")
    assert not _is_execution_line(theirs, "x")
    assert _is_execution_line("START RequestId: 1 Version: $LATEST", "x")


def test_a_plain_value_in_the_state_data_is_not_a_step() -> None:
    """A plain value in the state data (an execution from before the deploy states named their
    stage kept $.stage = "staging" | "production") is not a step's output with a job: it names
    no log source, and reading one does not crash."""
    events, describe = _execution()
    output = json.loads(describe["output"])
    describe["output"] = json.dumps({**output, "stage": "production"})

    found = {s.group for s in sources(DEFINITION, events, describe)}

    assert PROCESSING_GROUP in found
    assert TRAINING_GROUP in found
