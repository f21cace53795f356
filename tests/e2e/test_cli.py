"""The whole pipeline through the `sfn-mlops` CLI, as a user runs it: `local run` end to end,
`local up` driven by the AWS CLI, and the user-facing errors (messages, not tracebacks)."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from sfn_mlops.cli import main
from sfn_mlops.local.cloud import DEFAULT_ACCOUNT
from sfn_mlops.local.procs import free_port
from shared import resources

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
SFN_MLOPS = str(BIN / "sfn-mlops")
AWS = str(BIN / "aws")


def test_local_run_trains_deploys_predicts_and_retrains(tmp_path: Path) -> None:
    # As `make run` runs it: no --run-dir, so artifacts go to the relative ./runs/<timestamp>
    done = subprocess.run(
        [SFN_MLOPS, "local", "run", "--plain"],
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
        cwd=tmp_path,
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = (run_dir / "summary.txt").read_text()
    executions = [
        d for d in run_dir.iterdir() if d.is_dir() and d.name.startswith(("img-", "data-"))
    ]
    assert sorted(d.name.split("-")[0] for d in executions) == ["data", "img"]
    for d in executions:
        assert {"model.tar.gz", "evaluation.json", "history.json", "execution.json"} <= {
            p.name for p in d.iterdir()
        }
        assert json.loads((d / "execution.json").read_text())["status"] == "SUCCEEDED"
    assert summary.count("SUCCEEDED") == 2
    assert "vs champion (none) -> deploy" in summary  # the first model had nothing to beat
    retrain = next(d for d in executions if d.name.startswith("data-"))
    report = json.loads((retrain / "execution.json").read_text())
    gate = json.loads(report["output"])["gate"]
    assert gate["champion"] is not None  # the retraining was compared with the champion
    assert "InService" in summary
    assert "prediction after" in summary
    # the state progress was shown (plain lines: state, status, duration)
    assert "StartTraining" in done.stdout
    assert "UpdateEndpoint" in done.stdout


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            assert proc.poll() is None, "".join(seen)
            continue
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError("local up did not get ready:\n" + "".join(seen))


def _children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    )
    return [int(x) for x in out.stdout.split()]


def test_aws_cli_starts_and_redrives_an_execution_on_local_up(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [SFN_MLOPS, "local", "up", "--port", str(port), "--workdir", str(tmp_path / "cloud")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = _read_until(proc, "SFN_MLOPS_STATE_MACHINE_ARN", timeout=120)
        exported = dict(
            line.removeprefix("export ").strip().split("=", 1)
            for line in lines
            if line.startswith("export ")
        )
        env = {**os.environ, **exported}
        assert exported["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{port}"
        # raw data under a prefix that is still empty: the preprocessing job fails for real
        bucket = resources.bucket_name(DEFAULT_ACCOUNT, exported["AWS_DEFAULT_REGION"])
        late = f"s3://{bucket}/late-data/"
        payload = tmp_path / "payload.json"
        payload.write_text(
            json.dumps(
                {"deploy_mode": "never", "tags": {"source": "aws-cli"}, "raw_data_uri": late}
            )
        )

        started = subprocess.run(
            [
                AWS, "--endpoint-url", exported["AWS_ENDPOINT_URL"],
                "stepfunctions", "start-execution",
                "--state-machine-arn", exported["SFN_MLOPS_STATE_MACHINE_ARN"],
                "--input", f"file://{payload}",
            ],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip

        assert started.returncode == 0, started.stderr
        arn = json.loads(started.stdout)["executionArn"]
        sfn = boto3.client(
            "stepfunctions",
            endpoint_url=exported["AWS_ENDPOINT_URL"],
            region_name=exported["AWS_DEFAULT_REGION"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

        def wait() -> dict[str, Any]:
            deadline = time.monotonic() + 180
            while (desc := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
                assert time.monotonic() < deadline
                time.sleep(0.5)
            return desc  # type: ignore[no-any-return]

        failed = wait()
        assert failed["status"] == "FAILED", failed
        assert failed["redriveStatus"] == "REDRIVABLE"
        # the data arrives (the cause is fixed), and the AWS CLI redrives the execution
        s3 = boto3.client(
            "s3",
            endpoint_url=exported["AWS_ENDPOINT_URL"],
            region_name=exported["AWS_DEFAULT_REGION"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        for obj in s3.list_objects_v2(Bucket=bucket, Prefix=resources.DATA_PREFIX)["Contents"]:
            name = obj["Key"].rsplit("/", 1)[-1]
            s3.copy_object(
                Bucket=bucket,
                Key=f"late-data/{name}",
                CopySource={"Bucket": bucket, "Key": obj["Key"]},
            )
        redriven = subprocess.run(
            [
                AWS, "--endpoint-url", exported["AWS_ENDPOINT_URL"],
                "stepfunctions", "redrive-execution", "--execution-arn", arn,
            ],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert redriven.returncode == 0, redriven.stderr
        assert "redriveDate" in json.loads(redriven.stdout)
        desc = wait()
        assert desc["status"] == "SUCCEEDED", desc
        assert desc["redriveCount"] == 1
        assert desc["executionArn"] == arn
        output: dict[str, Any] = json.loads(desc["output"])
        assert output["config"]["tags"] == {"source": "aws-cli"}
        assert output["gate"]["deploy"] is False  # deploy_mode never

        # the CLI against the same local cloud
        runner_env = {"SFN_MLOPS_LOCAL_PORT": str(port)}
        listed = CliRunner().invoke(main, ["executions", "--local"], env=runner_env)
        assert listed.exit_code == 0, listed.output
        assert arn.rsplit(":", 1)[-1] in listed.output
        described = CliRunner().invoke(main, ["describe", "--local", arn], env=runner_env)
        assert described.exit_code == 0, described.output
        assert "SUCCEEDED" in described.output
        assert "StartTraining" in described.output
        assert "redrive 1: continues from PollPreprocessing" in described.output
        assert "StartPreprocessing" in described.output
        assert "run 2" in described.output
        unknown = CliRunner().invoke(
            main, ["describe", "--local", "no-such-execution"], env=runner_env
        )
        assert unknown.exit_code == 2
        assert "unknown execution" in unknown.output
        redrive = CliRunner().invoke(main, ["redrive", "--local", arn], env=runner_env)
        assert redrive.exit_code == 2  # SUCCEEDED now: AWS's ExecutionNotRedrivable
        assert "cannot redrive: Execution is SUCCEEDED" in redrive.output
        assert "sfn-mlops rerun" in redrive.output
        children = _children(proc.pid)
        assert children  # warm Lambda workers at least
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    for pid in children:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )


# --- user-facing errors ------------------------------------------------------------------


def test_every_command_has_help() -> None:
    for args in (
        [], ["local"], ["local", "run"], ["local", "up"], ["start"], ["executions"],
        ["describe"], ["rerun"], ["redrive"], ["invoke"],
    ):  # fmt: skip
        result = CliRunner().invoke(main, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)
        assert "Usage:" in result.output


def test_invalid_payload_lists_every_bad_field_before_starting(tmp_path: Path) -> None:
    payload = tmp_path / "bad.json"
    payload.write_text(json.dumps({"problem_type": "multiclass", "max_polls": 0, "colour": "red"}))

    # an endpoint nobody listens on: validation happens before any call
    result = CliRunner().invoke(
        main, ["start", "--input", str(payload), "--endpoint-url", "http://127.0.0.1:9"]
    )

    assert result.exit_code == 2
    for field in ("problem_type", "max_polls", "colour"):
        assert field in result.output
    assert "Traceback" not in result.output


def test_payload_check_is_the_validate_states_own(tmp_path: Path) -> None:
    # GIVEN a payload whose fields are each valid, but whose polls cannot outlast the job
    payload = tmp_path / "short-polls.json"
    payload.write_text(json.dumps({"max_polls": 2, "max_runtime_seconds": 3600}))
    # WHEN it is started
    result = CliRunner().invoke(
        main, ["start", "--input", str(payload), "--endpoint-url", "http://127.0.0.1:9"]
    )
    # THEN the cross-field rule ValidateInput applies is applied here too, with its fix
    assert result.exit_code == 2
    assert "max_polls" in result.output
    assert "set max_polls >=" in result.output


def test_no_credentials_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    env = {
        "AWS_ACCESS_KEY_ID": None,
        "AWS_SECRET_ACCESS_KEY": None,
        "AWS_SESSION_TOKEN": None,
        "AWS_PROFILE": None,
        "AWS_ENDPOINT_URL": None,
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": None,
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": None,
    }

    result = CliRunner().invoke(main, ["executions", "--region", "eu-west-1"], env=env)

    assert result.exit_code == 2
    assert "no AWS credentials" in result.output


def test_port_in_use_is_a_message() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        result = CliRunner().invoke(main, ["local", "up", "--port", str(port)])

    assert result.exit_code == 2
    assert f"port {port}" in result.output
    assert "in use" in result.output
