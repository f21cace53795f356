"""What a local Lambda worker does while it initialises, before the first invocation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from shared.resources import REPO_ROOT


def _serve(tmp_path: Path, handler: str, events: list[Any], **env_extra: str) -> list[Any]:
    """Start a worker for `handler` (module.function in tmp_path), send it `events` one by one
    after its "ready" line, and return its replies."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    env.update(
        _HANDLER=handler,
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO_ROOT)]),
        AWS_LAMBDA_FUNCTION_NAME="probe",
        **env_extra,
    )
    replies = []
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
            for event in events:
                request = {"event": event, "request_id": "r1", "deadline_ms": 2**42}
                worker.stdin.write((json.dumps(request) + "\n").encode())
                worker.stdin.flush()
                replies.append(json.loads(worker.stdout.readline()))
        finally:
            worker.kill()
    return replies


HANDLER = """
import pydantic
from pydantic.plugin import _loader


def handler(event, context):
    return {"plugins_scanned": _loader._plugins is not None}
"""


def test_pydantic_plugins_are_found_at_init_not_in_the_first_invocation(tmp_path: Path) -> None:
    # GIVEN a handler module that imports pydantic but builds no validator at import
    (tmp_path / "probe_handler.py").write_text(HANDLER)
    # WHEN a worker has initialised and serves its first invocation
    replies = _serve(tmp_path, "probe_handler.handler", [{}])
    # THEN pydantic's plugin scan had already happened (during init)
    assert replies == [{"result": {"plugins_scanned": True}}]


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
    # WHEN a worker has initialised and serves two invocations (a good and a bad event)
    events = [{"name": "a"}, {"name": 3}]
    replies = _serve(tmp_path, "probe_models.handler", events, POWERTOOLS_TRACE_DISABLED="true")
    # THEN the model and the tracer existed before the first invocation,
    assert replies[0] == {"result": {"built_before": True, "tracer_made": True, "name": "a"}}
    # and validation answers as a lazily built model does
    assert replies[1]["error"]["errorType"] == "ValidationError"
