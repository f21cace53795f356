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
