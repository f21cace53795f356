"""What a local Lambda worker does while it initialises, before the first invocation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from shared.resources import REPO_ROOT

HANDLER = """
import pydantic
from pydantic.plugin import _loader


def handler(event, context):
    return {"plugins_scanned": _loader._plugins is not None}
"""


def test_pydantic_plugins_are_found_at_init_not_in_the_first_invocation(tmp_path: Path) -> None:
    # GIVEN a handler module that imports pydantic but builds no validator at import
    (tmp_path / "probe_handler.py").write_text(HANDLER)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    env.update(
        _HANDLER="probe_handler.handler",
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO_ROOT)]),
        AWS_LAMBDA_FUNCTION_NAME="probe",
    )
    # WHEN a worker has initialised and serves its first invocation
    with subprocess.Popen(
        [sys.executable, "-m", "sfn_mlops.local.lambda_worker"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as worker:
        assert worker.stdin is not None
        assert worker.stdout is not None
        try:
            assert json.loads(worker.stdout.readline()) == {"ready": True}
            request = {"event": {}, "request_id": "r1", "deadline_ms": int(time.time() * 1e3)}
            worker.stdin.write((json.dumps(request) + "\n").encode())
            worker.stdin.flush()
            reply = json.loads(worker.stdout.readline())
        finally:
            worker.kill()
    # THEN pydantic's plugin scan had already happened (during init)
    assert reply == {"result": {"plugins_scanned": True}}


MODELS_HANDLER = """
import pydantic

from shared.handler import lambda_entry


class Request(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(defer_build=True)
    name: str


class Unused(pydantic.BaseModel):  # named by the handler's package: built too
    model_config = pydantic.ConfigDict(defer_build=True)
    size: int


@lambda_entry(tracing=True)
def handler(event, context):
    from shared import observability

    built = Request.__pydantic_complete__
    return {
        "built_before": built,
        "tracer_made": observability.get_tracer.cache_info().currsize == 1,
        "name": Request.model_validate(event).name,
    }
"""


def test_models_and_tracer_are_made_at_init_and_the_invocation_is_unchanged(
    tmp_path: Path,
) -> None:
    # GIVEN a traced handler whose package names a defer_build model
    (tmp_path / "probe_models.py").write_text(MODELS_HANDLER)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    env.update(
        _HANDLER="probe_models.handler",
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO_ROOT)]),
        AWS_LAMBDA_FUNCTION_NAME="probe",
        POWERTOOLS_TRACE_DISABLED="true",
    )
    # WHEN a worker has initialised and serves two invocations (a good and a bad event)
    with subprocess.Popen(
        [sys.executable, "-m", "sfn_mlops.local.lambda_worker"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as worker:
        assert worker.stdin is not None
        assert worker.stdout is not None
        replies = []
        try:
            assert json.loads(worker.stdout.readline()) == {"ready": True}
            for event in ({"name": "a"}, {"name": 3}):
                request = {"event": event, "request_id": "r", "deadline_ms": 2**42}
                worker.stdin.write((json.dumps(request) + "\n").encode())
                worker.stdin.flush()
                replies.append(json.loads(worker.stdout.readline()))
        finally:
            worker.kill()
    # THEN the model and the tracer existed before the first invocation,
    assert replies[0] == {"result": {"built_before": True, "tracer_made": True, "name": "a"}}
    # and validation answers as a lazily built model does
    assert replies[1]["error"]["errorType"] == "ValidationError"
