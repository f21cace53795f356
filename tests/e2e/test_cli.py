"""The whole pipeline through the `sfn-mlops` CLI, as a user runs it: `local run` end to end,
`local up` driven by the AWS CLI, and the user-facing errors (messages, not tracebacks)."""

from __future__ import annotations

import json
import os
import queue
import re
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
from browser import assert_drawn, render
from click.testing import CliRunner

from sfn_mlops.cli import main
from sfn_mlops.local.cloud import DEFAULT_ACCOUNT
from sfn_mlops.local.procs import free_port
from sfn_mlops.local.stack import NOTIFICATION_INBOX
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
    # the same sample rows are predicted after each execution (the model did not change)
    predictions = re.findall(r"prediction after .*?: (\[.*?\]) \((\d+) sample rows\)", summary)
    assert len(predictions) == 2
    assert predictions[0] == predictions[1]  # the retrained model was not deployed
    # the invoke hint names a file that exists, and says a local cloud is needed
    hint = re.search(r"invoke --local --endpoint \S+ (\S+)", summary)
    assert hint is not None
    assert (tmp_path / hint.group(1)).is_file()
    assert "local up" in summary
    # the state progress was shown (plain lines: state, status, duration), one line per
    # poll loop with its count
    assert "StartTraining" in done.stdout
    assert "UpdateEndpoint" in done.stdout
    assert re.search(r"PollTraining\s+succeeded\s+[\d.]+s\s+\(\d+ polls?\)", done.stdout)
    assert "WaitForTraining" not in done.stdout
    # the pages: a report per execution, the run's index linking them, printed at the end
    index = run_dir / "index.html"
    assert f"open {index.resolve()}" in done.stdout
    for d in executions:
        assert f'href="{d.name}/report.html"' in index.read_text()
    # the retraining's report, in a real browser: every figure drawn, no error, no network
    shown = render(retrain / "report.html", retrain / "report.png")
    assert_drawn(
        shown,
        {"workflow", "timeline", "roc", "pr", "confusion-challenger", "confusion-champion",
         "feature-importance"},
    )  # fmt: skip
    for text in ("Gate decision", "champion not beaten", "Data profile", "mean_radius",
                 "SageMaker job", "training"):  # fmt: skip
        assert text in shown["text"], text
    assert (retrain / "report.png").stat().st_size > 50_000


def test_local_run_regression_report(tmp_path: Path) -> None:
    # GIVEN the regression data set that ships with scikit-learn
    done = subprocess.run(
        [SFN_MLOPS, "local", "run", "--plain", "--dataset", "diabetes",
         "--run-dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=420, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    retrain = next((tmp_path / "run").glob("data-*"))
    # THEN its report draws predicted-vs-actual and residuals in a real browser
    shown = render(retrain / "report.html", retrain / "report.png")
    assert_drawn(
        shown, {"workflow", "timeline", "predicted-vs-actual", "residuals", "feature-importance"}
    )
    assert "roc" not in {p["id"] for p in shown["plots"]}
    assert "rmse (objective)" in shown["text"]


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


def _notification(endpoint: str, queue_url: str, env: dict[str, str], name: str) -> Any:
    """The inbox's notification about execution `name` (AWS CLI, bounded long polls)."""
    for _ in range(10):
        received = subprocess.run(
            [AWS, "--endpoint-url", endpoint, "sqs", "receive-message", "--queue-url", queue_url,
             "--max-number-of-messages", "10", "--wait-time-seconds", "2"],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert received.returncode == 0, received.stderr
        for body in [m["Body"] for m in json.loads(received.stdout or "{}").get("Messages", [])]:
            message = json.loads(body)
            if message.get("execution_name") == name:
                return message
    raise AssertionError(f"no notification about {name} in {queue_url}")


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
        # raw data under a prefix that is still empty: refused at ValidateInput, before compute
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
        # the failure notification, read back with the AWS CLI from the inbox `local up` names
        found = subprocess.run(
            [AWS, "--endpoint-url", exported["AWS_ENDPOINT_URL"], "sqs", "get-queue-url",
             "--queue-name", NOTIFICATION_INBOX],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert found.returncode == 0, found.stderr
        inbox = json.loads(found.stdout)["QueueUrl"]
        message = _notification(exported["AWS_ENDPOINT_URL"], inbox, env, failed["name"])
        assert message["failed_state"] == "ValidateInput"
        assert message["error"] == failed["error"]
        assert message["console_url"].endswith(arn)
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
        assert "redrive 1: continues from ValidateInput" in described.output
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
        assert any(f"work dir (job files, Lambda and job logs): {tmp_path / 'cloud'}" in line
                   for line in lines)  # fmt: skip
        assert any("in memory" in line for line in lines)

        _scripting_against_local_up(tmp_path, runner_env, arn, env, exported)

        # the README's "From a notebook" block, as written, against this local cloud
        notebook = subprocess.run(
            [sys.executable, "-c", _readme_block("runs this block against `sfn-mlops local up`")],
            capture_output=True, text=True, env=env, timeout=300, check=False,
        )  # fmt: skip
        assert notebook.returncode == 0, notebook.stdout[-2000:] + notebook.stderr[-3000:]
        assert "\nSUCCEEDED [" in f"\n{notebook.stdout}"  # status and the gate's reasons
        assert "'predictions': [" in notebook.stdout
        children = _children(proc.pid)
        assert children  # warm Lambda workers at least
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    # a restart on the same port works at once (the stopped server's connections linger in
    # TIME_WAIT; the port probe must not mistake them for a listener)
    again = subprocess.Popen(
        [SFN_MLOPS, "local", "up", "--port", str(port), "--no-data"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        _read_until(again, "SFN_MLOPS_STATE_MACHINE_ARN", timeout=120)
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=30)
    for pid in children:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )


def _logs_of(arn: str, runner_env: dict[str, str], env: dict[str, str]) -> None:
    """The execution's logs, from the local cloud's own CloudWatch Logs: through
    `sfn-mlops logs`, and through the AWS CLI under AWS's group names."""
    name = arn.rsplit(":", 1)[-1]
    found = _cli(["logs", "--local", "--json", arn], runner_env)
    assert found.exit_code == 0, found.output
    lines = json.loads(found.stdout)
    groups = {ln["group"] for ln in lines}
    assert "/aws/lambda/sfn-mlops-validate" in groups, groups
    assert "/aws/lambda/sfn-mlops-train" in groups
    # and what the jobs and the model server printed, under SageMaker's group names
    assert {"/aws/sagemaker/ProcessingJobs", "/aws/sagemaker/TrainingJobs"} <= groups, groups
    assert "/aws/sagemaker/Endpoints/sfn-mlops-endpoint" in groups, groups
    validate = [ln for ln in lines if ln["group"] == "/aws/lambda/sfn-mlops-validate"]
    assert any(json.loads(ln["message"]).get("correlation_id") == name
               for ln in validate if ln["message"].startswith("{"))  # fmt: skip
    assert any(ln["message"].startswith("REPORT RequestId: ") for ln in validate)
    # one state: only its function (and its step's job)
    one = json.loads(_cli(["logs", "--local", "--json", "--state", "StartTraining", arn],
                          runner_env).stdout)  # fmt: skip
    assert {ln["state"] for ln in one} == {"StartTraining"}
    assert {ln["group"] for ln in one} == {
        "/aws/lambda/sfn-mlops-train",
        "/aws/sagemaker/TrainingJobs",
    }
    text = _cli(["logs", "--local", arn], runner_env)
    assert text.exit_code == 0
    assert "sfn-mlops-validate" in text.output
    # the AWS CLI reads the same groups (AWS CLI v2's `logs tail` calls FilterLogEvents too)
    cli = subprocess.run(
        [AWS, "logs", "filter-log-events", "--log-group-name", "/aws/lambda/sfn-mlops-validate"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    assert name in cli.stdout


def _readme_block(marker: str) -> str:
    """The code block that follows `marker` in the README."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = text.index("```python", text.index(marker)) + len("```python")
    return text[start : text.index("```", start)]


def _cli(args: list[str], env: dict[str, str]) -> Any:
    return CliRunner().invoke(main, args, env=env)


def _scripting_against_local_up(
    tmp_path: Path, runner_env: dict[str, str], arn: str, env: dict[str, str],
    exported: dict[str, str],
) -> None:  # fmt: skip
    """--json everywhere, describe's exit code, report, and the invoke forms of the README."""
    # describe --json: the states, each poll loop as one entry with its poll count
    described = _cli(["describe", "--local", "--json", arn], runner_env)
    assert described.exit_code == 0, described.output
    info = json.loads(described.output)
    assert info["status"] == "SUCCEEDED"
    polls = {st["name"]: st["polls"] for st in info["states"]}
    assert polls["PollTraining"] >= 1
    assert "WaitForTraining" not in polls
    listed = json.loads(_cli(["executions", "--local", "--json"], runner_env).output)
    assert arn in {e["executionArn"] for e in listed}

    # report --local: one self-contained page
    out = tmp_path / "report.html"
    made = _cli(["report", "--local", "--json", "--out", str(out), arn], runner_env)
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["report"] == str(out)
    html = out.read_text()
    assert 'data-plot="roc"' in html
    assert "<script" not in html

    # an execution that fails: describe exits 1 and names the state (with --json too)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"target_column": "no_such_column"}))
    failed = subprocess.run(
        [AWS, "stepfunctions", "start-execution",
         "--state-machine-arn", exported["SFN_MLOPS_STATE_MACHINE_ARN"],
         "--input", f"file://{bad}"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    failed_arn = json.loads(failed.stdout)["executionArn"]
    deadline = time.monotonic() + 120
    while True:
        result = _cli(["describe", "--local", "--json", failed_arn], runner_env)
        if json.loads(result.stdout)["status"] != "RUNNING":
            break
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert result.exit_code == 1, result.output
    failure = json.loads(result.stdout)["failure"]
    assert failure["state"] == "ValidateInput"  # the header has no such column: before any job
    assert "no_such_column" in failure["cause"]
    text = _cli(["describe", "--local", failed_arn], runner_env)
    assert text.exit_code == 1
    assert "failed at ValidateInput" in text.output

    # start --wait --json with the default payload: trains and deploys; the README's invoke
    # forms then work: a CSV file (the run's sample.csv), CSV rows inline
    started = _cli(["start", "--local", "--wait", "--json"], runner_env)
    assert started.exit_code == 0, started.output
    done = json.loads(started.output[started.output.index("{") :])
    assert done["status"] == "SUCCEEDED"
    sample_uri = done["output"]["preprocess"]["sample_uri"]
    bucket, _, key = f"{sample_uri}/sample.csv"[5:].partition("/")
    sample = tmp_path / "sample.csv"
    s3 = boto3.client("s3", endpoint_url=exported["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    s3.download_file(bucket, key, str(sample))
    endpoint = done["output"]["deploy"]["endpoint_name"]
    from_file = _cli(["invoke", "--local", "--json", "--endpoint", endpoint, str(sample)],
                     runner_env)  # fmt: skip
    assert from_file.exit_code == 0, from_file.output
    rows = sample.read_text().splitlines()[1:3]
    inline = _cli(["invoke", "--local", "--endpoint", endpoint, *rows], runner_env)
    assert inline.exit_code == 0, inline.output
    assert json.loads(from_file.stdout)["rows"] == len(sample.read_text().splitlines()) - 1
    _logs_of(done["executionArn"], runner_env, env)

    not_rows = _cli(["invoke", "--local", "--endpoint", endpoint, "a,b"], runner_env)
    assert not_rows.exit_code == 2
    assert "neither a file nor a CSV row" in not_rows.output


# --- user-facing errors ------------------------------------------------------------------


def test_every_command_has_help() -> None:
    for args in (
        [], ["local"], ["local", "run"], ["local", "up"], ["start"], ["executions"],
        ["describe"], ["rerun"], ["redrive"], ["invoke"], ["report"],
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


def test_an_endpoint_the_stack_was_not_deployed_with_is_refused_before_starting(
    tmp_path: Path,
) -> None:
    # GIVEN a payload naming an endpoint outside config/pipeline.yaml's (the stack's roles
    # may use only those)
    payload = tmp_path / "other-endpoint.json"
    payload.write_text(json.dumps({"endpoint_name": "other-endpoint"}))
    # WHEN it is started
    result = CliRunner().invoke(
        main, ["start", "--input", str(payload), "--endpoint-url", "http://127.0.0.1:9"]
    )
    # THEN ValidateInput's refusal is given here, before any call, with the fix
    assert result.exit_code == 2
    assert "endpoint_name: 'other-endpoint' is not one of this stack's endpoints" in result.output
    assert "deploy the stack with it in config/pipeline.yaml or omit it" in result.output


def test_payload_over_256_kib_is_refused_before_starting(tmp_path: Path) -> None:
    # GIVEN a 300 KiB payload (a big free-form tag), otherwise valid
    payload = tmp_path / "big.json"
    payload.write_text(json.dumps({"tags": {"note": "x" * 300 * 1024}}))
    # WHEN it is started (an endpoint nobody listens on: nothing may be called)
    result = CliRunner().invoke(
        main, ["start", "--input", str(payload), "--endpoint-url", "http://127.0.0.1:9"]
    )
    # THEN the CLI names the size and Step Functions' limit instead of a DataLimitExceeded
    assert result.exit_code == 2
    assert "the payload is 307222 bytes" in result.output
    assert "at most 262144 bytes (256 KiB) of execution input" in result.output
    assert "Traceback" not in result.output


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


def test_wait_prints_the_whole_failure_cause(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an execution that failed with a cause far longer than the live view's 160 chars
    from sfn_mlops import cli, progress

    reason = "raw/data.csv: target column 'target' must hold 0 or 1; " + "found [2.0] " * 40
    cause = json.dumps({"errorMessage": reason, "errorType": "JobFailedError"})
    events = [
        {
            "type": "ExecutionFailed",
            "id": 1,
            "timestamp": 0,
            "executionFailedEventDetails": {"error": "JobFailedError", "cause": cause},
        }
    ]
    desc = {"name": "run-1", "status": "FAILED"}
    monkeypatch.setattr(progress, "follow", lambda *args, **kwargs: (desc, events))

    class FakeTarget:
        def client(self, name: str) -> None:
            return None

    # WHEN `start --wait` ends
    code = cli._wait(FakeTarget(), "arn:aws:states:us-east-1:1:execution:sm:run-1", 1.0)  # type: ignore[arg-type]
    # THEN it exits 1 and prints the cause whole
    assert code == 1
    out = capsys.readouterr().out
    assert f"failed at ?: JobFailedError: {reason}" in out


def test_invoke_rows_that_are_neither_a_file_nor_csv_is_a_message(tmp_path: Path) -> None:
    # an endpoint nobody listens on: the rows are checked before any call
    args = ["invoke", "--endpoint-url", "http://127.0.0.1:9", "--endpoint", "e"]
    result = CliRunner().invoke(main, [*args, "rows.csv"])
    assert result.exit_code == 2
    assert "'rows.csv' is neither a file nor a CSV row of numbers" in result.output
    empty = tmp_path / "empty.csv"
    empty.write_text("a,b,c\n")
    result = CliRunner().invoke(main, [*args, str(empty)])
    assert result.exit_code == 2
    assert "has no data rows" in result.output
