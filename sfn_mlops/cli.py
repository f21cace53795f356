"""`sfn-mlops`: run the pipeline locally, or drive it on AWS (or a running local cloud).

    sfn-mlops local run                 the whole pipeline on this machine (make run)
    sfn-mlops local up                  a local cloud to point the AWS CLI / boto3 at
    sfn-mlops start --input p.json      start an execution with a payload
    sfn-mlops executions                list recent executions
    sfn-mlops describe EXECUTION        status, states, error and cause, gate decision
    sfn-mlops rerun EXECUTION           a new execution with the same input ("New execution")
    sfn-mlops redrive EXECUTION         continue a failed execution from its failed state
    sfn-mlops approve EXECUTION|PACKAGE promote a run waiting at WaitForApproval, or approve a
                                        registry package (which deploys it)
    sfn-mlops reject EXECUTION|PACKAGE  reject the promotion (production unchanged) / package
    sfn-mlops invoke --endpoint N r.csv predictions from an endpoint (a file, -, or CSV rows)
    sfn-mlops report EXECUTION          one self-contained HTML page about an execution
    sfn-mlops logs EXECUTION            its Lambda, job and endpoint logs (CloudWatch Logs)

Commands that print data take --json (one JSON document on stdout; progress goes to
stderr). `describe` exits 1 when the execution FAILED, TIMED_OUT or ABORTED.

AWS commands use the standard credential chain (--profile, --region); --local (or
--endpoint-url) talks to a local cloud started with `sfn-mlops local up`.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from sfn_mlops.aws import (
    DEFAULT_LOCAL_PORT,
    LOCAL_PORT_ENV,
    Target,
    UserError,
    call,
    local_endpoint,
)

F = TypeVar("F", bound=Callable[..., Any])


def _user_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from sfn_mlops.local.cloud import PortInUseError

        try:
            return fn(*args, **kwargs)
        except (UserError, PortInUseError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def aws_options(fn: F) -> F:
    """--region/--profile (AWS) or --local/--endpoint-url (a local cloud)."""
    options = [
        click.option(
            "--region", envvar="AWS_REGION", help="AWS region (default: your configuration)."
        ),
        click.option("--profile", envvar="AWS_PROFILE", help="AWS named profile."),
        click.option(
            "--local",
            "use_local",
            is_flag=True,
            help="Talk to a local cloud (sfn-mlops local up) on port "
            f"${{SFN_MLOPS_LOCAL_PORT:-{DEFAULT_LOCAL_PORT}}}.",
        ),
        click.option(
            "--endpoint-url", help="Talk to this AWS-compatible endpoint (e.g. a local cloud)."
        ),
        click.option(
            "--state-machine-arn",
            envvar="SFN_MLOPS_STATE_MACHINE_ARN",
            help="The pipeline's state machine (default: found by name).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def json_option(fn: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text."
    )(fn)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def _target(
    region: str | None,
    profile: str | None,
    use_local: bool,
    endpoint_url: str | None,
    state_machine_arn: str | None,
) -> Target:
    if use_local and not endpoint_url:
        endpoint_url = local_endpoint()
    return Target(
        region=region or ("us-east-1" if endpoint_url else None),
        profile=None if endpoint_url else profile,
        endpoint_url=endpoint_url,
        state_machine_arn=state_machine_arn,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sfn-mlops")
def main() -> None:
    """sfn-mlops: a Step Functions MLOps pipeline — retrain, evaluate, register and deploy
    only when better — on AWS or in an embedded local cloud (no AWS account, no Docker)."""


# --- local -------------------------------------------------------------------------------
@main.group()
def local() -> None:
    """The local cloud: the same state machine and Lambda code, on this machine."""


@local.command("run")
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path),
    help="Where artifacts go (default ./runs/<timestamp>).",
)
@click.option(
    "--port", type=int, default=0, show_default="a free port", help="Port of the local cloud."
)
@click.option(
    "--plain", is_flag=True, default=None, help="Plain progress lines even on a terminal."
)
@click.option(
    "--baseline", is_flag=True, help="Also time preprocess+train+evaluate run as bare scripts."
)
@click.option(
    "--dataset",
    type=click.Choice(["breast_cancer", "diabetes"]),
    default="breast_cancer",
    show_default=True,
    help="A data set that ships with scikit-learn: breast_cancer (binary classification) "
    "or diabetes (regression).",
)
@click.option(
    "--scenario",
    type=click.Choice(["pipeline", "drift"]),
    default="pipeline",
    show_default=True,
    help="pipeline: train, deploy, predict, retrain on new data. drift: train and deploy, "
    "send shifted traffic to the production endpoint, run the scheduled drift check; its "
    "alarm starts one retraining through the same gate.",
)
@_user_errors
def local_run_cmd(
    run_dir: Path | None,
    port: int,
    plain: bool | None,
    baseline: bool,
    dataset: str,
    scenario: str,
) -> None:
    """Run the whole pipeline locally: image push -> training execution -> endpoint ->
    prediction; new data -> retraining compared with the champion (--scenario drift: shifted
    traffic -> drift check -> alarm -> retraining). Exit 1 on failure."""
    from sfn_mlops.local import procs
    from sfn_mlops.local.run import default_run_dir, local_run
    from sfn_mlops.local.scenarios import local_drift_run

    procs.install_signal_handlers()
    run_dir = run_dir or default_run_dir()
    runner = local_drift_run if scenario == "drift" else local_run
    code = runner(run_dir, port=port, plain=plain, dataset=dataset)
    if baseline and code == 0:
        from sfn_mlops.local.baseline import bare_scripts

        seconds = bare_scripts(run_dir / "data" / "initial.csv", run_dir / "baseline")
        click.echo(f"bare scripts (preprocess + train + evaluate, same data): {seconds:.1f}s")
    _exit_now(code)


def _exit_now(code: int) -> NoReturn:
    """Exit without the interpreter's teardown: after a local run (everything it started is
    stopped by then) freeing moto's backends and the modules took 2-8 s of a `make run`
    (py-spy: the main thread with no Python frame). Output and logs are flushed first, and
    the process' exit handlers run (procs.kill_all: nothing may outlive us)."""
    import logging

    from sfn_mlops.local import procs

    procs.kill_all()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@local.command("up")
@click.option(
    "--port", type=int, default=DEFAULT_LOCAL_PORT, show_default=True, help="Port to listen on."
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    help="Where jobs and logs go (default: a temp dir).",
)
@click.option("--no-data", is_flag=True, help="Do not seed the default data set under data/.")
@click.option(
    "--lambda-concurrency",
    type=click.IntRange(min=1),
    default=None,
    envvar="SFN_MLOPS_LAMBDA_CONCURRENCY",
    show_envvar=True,
    show_default="5 per CPU",
    help="Concurrent Lambda invocations before Invoke is throttled (the account quota).",
)
@json_option
@_user_errors
def local_up_cmd(
    port: int,
    workdir: Path | None,
    no_data: bool,
    lambda_concurrency: int | None,
    as_json: bool,
) -> None:
    """Keep a local cloud with the stack deployed running until Ctrl-C, and print what
    to export so that the AWS CLI and boto3 reach it. Its state (executions, buckets,
    models, logs) lives in memory and is gone when it stops; job files stay in its work
    dir."""
    import threading

    from sfn_mlops.local import procs
    from sfn_mlops.local.cloud import LocalCloud, PortInUseError
    from sfn_mlops.local.run import export_dataset
    from sfn_mlops.local.stack import deploy, enable_triggers
    from shared import resources

    if port and procs.port_in_use(port):
        raise PortInUseError("127.0.0.1", port)
    procs.install_signal_handlers()
    with LocalCloud(port=port, workdir=workdir, lambda_concurrency=lambda_concurrency) as cloud:
        stack = deploy(cloud, triggers=False)
        if not no_data:
            seed, _ = export_dataset(cloud.workdir / "data")
            cloud.client("s3").upload_file(
                str(seed), stack.bucket, f"{resources.DATA_PREFIX}{seed.name}"
            )
        enable_triggers(cloud, stack)
        env = {
            **cloud.env(),
            "SFN_MLOPS_STATE_MACHINE_ARN": stack.state_machine_arn,
            LOCAL_PORT_ENV: str(cloud.port),
        }
        if as_json:
            _echo_json(
                {
                    "endpoint_url": cloud.endpoint_url,
                    "workdir": str(cloud.workdir),
                    "env": env,
                    "bucket": stack.bucket,
                    "repository_uri": stack.repository_uri,
                    "state_machine_arn": stack.state_machine_arn,
                    "notification_queue_url": stack.notification_queue_url,
                    "lambda_concurrency": cloud.lambdas.concurrency,
                }
            )
        else:
            _print_local_up(
                cloud.endpoint_url, cloud.workdir, env, stack, cloud.lambdas.concurrency
            )
        sys.stdout.flush()
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            click.echo("stopping the local cloud")


def _print_local_up(
    url: str, workdir: Path, env: dict[str, str], stack: Any, concurrency: int
) -> None:
    click.echo(
        f"local cloud running at {url}  (Ctrl-C to stop; Lambda concurrency limit {concurrency})"
    )
    click.echo(f"# work dir (job files, Lambda and job logs): {workdir}")
    click.echo("# its state is in memory: executions, buckets and models are gone when it stops")
    click.echo("# export these for the AWS CLI / boto3:")
    for key, value in env.items():
        click.echo(f"export {key}={value}")
    click.echo(f"# bucket: {stack.bucket}  repository: {stack.repository_uri}")
    click.echo(
        "# notifications (failed executions, outcomes): "
        f"aws sqs receive-message --queue-url {stack.notification_queue_url}"
    )
    click.echo(
        f"# e.g. aws --endpoint-url {url} stepfunctions start-execution "
        f"--state-machine-arn {stack.state_machine_arn} --input file://payload.json"
    )


# --- executions ----------------------------------------------------------------------------
FAILED_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")


def _execution_info(target: Target, arn: str) -> dict[str, Any]:
    """What `describe` shows, as data (its --json)."""
    from sfn_mlops.history import failure, pretty_cause, state_runs
    from sfn_mlops.progress import collapse_polls, get_history, row_note

    sfn = target.client("stepfunctions")
    desc = call(sfn.describe_execution, executionArn=arn)
    events = call(get_history, sfn, arn)
    info: dict[str, Any] = {
        key: desc.get(key)
        for key in (
            "name",
            "executionArn",
            "status",
            "startDate",
            "stopDate",
            "redriveCount",
            "redriveDate",
            "redriveStatus",
            "redriveStatusReason",
        )
    }
    info["states"] = [
        {
            "name": row.name,
            "type": row.type,
            "status": row.status,
            "seconds": row.seconds,
            "retries": 0 if row.polls else row.retries,
            "polls": row.polls,
            "redrive": row.redrive,
            "note": row_note(row),
        }
        for row in collapse_polls(state_runs(events))
    ]
    info["failure"] = None
    if desc["status"] in FAILED_STATUSES:
        state, error, cause = failure(events) or (
            None,
            desc.get("error"),
            desc.get("cause"),
        )
        info["failure"] = {"state": state, "error": error, "cause": pretty_cause(str(cause), None)}
    out = json.loads(desc["output"]) if desc.get("output") else None
    info["gate"] = out.get("gate") if isinstance(out, dict) else None
    info["output"] = out
    return info


def _print_execution(info: dict[str, Any]) -> None:
    click.echo(f"{info['name']}  {info['status']}")
    click.echo(f"  arn:     {info['executionArn']}")
    click.echo(
        f"  started: {info['startDate']}"
        + (f"  stopped: {info['stopDate']}" if info.get("stopDate") else "")
    )
    if info.get("redriveCount"):
        click.echo(f"  redrives: {info['redriveCount']} (last {info.get('redriveDate')})")
    if info.get("redriveStatus"):
        reason = info.get("redriveStatusReason")
        click.echo(f"  redrive: {info['redriveStatus']}" + (f" ({reason})" if reason else ""))
    click.echo("  states:")
    round_ = 0
    for st in info["states"]:
        if st["redrive"] != round_:
            round_ = st["redrive"]
            click.echo(f"    -- redrive {round_}: continues from {st['name']} --")
        secs = f"{st['seconds']:.2f}s" if st["seconds"] is not None else "-"
        note = f" ({st['note']})" if st["note"] else ""
        click.echo(f"    {st['name']:<26} {st['status']:<10} {secs:>8}{note}")
    where = info["failure"]
    if where:
        click.echo(f"  failed at {where['state']}: {where['error']}: {where['cause']}")
    gate = info["gate"]
    if gate:
        click.echo(
            f"  gate: {gate.get('metric')} challenger {gate.get('challenger')} champion "
            f"{gate.get('champion')} -> {'deploy' if gate.get('deploy') else 'no deploy'}"
        )
        for reason in gate.get("reasons", []):
            click.echo(f"    - {reason}")
        for warning in gate.get("data_warnings", []):
            click.echo(f"  data warning: {warning}")


def _wait(target: Target, arn: str, timeout: float, as_json: bool = False) -> int:
    """Follow the execution (progress on stderr with --json); exit code 0 iff SUCCEEDED."""
    from sfn_mlops.history import failure, pretty_cause
    from sfn_mlops.progress import PlainView, follow, make_view

    view = PlainView(out=sys.stderr) if as_json else make_view()
    view.start(f"execution {arn.rsplit(':', 1)[-1]}")
    try:
        desc, events = call(follow, target.client("stepfunctions"), arn, view, timeout)
    finally:
        view.stop()
    if as_json:
        _echo_json(_execution_info(target, arn))
        return 0 if desc["status"] == "SUCCEEDED" else 1
    click.echo(f"{desc['name']}: {desc['status']}")
    if desc["status"] != "SUCCEEDED":  # the whole cause: the live view shortens it
        where = failure(events)
        if where:
            click.echo(f"  failed at {where[0]}: {where[1]}: {pretty_cause(where[2], None)}")
        elif desc.get("cause") or desc.get("error"):
            click.echo(f"  error: {desc.get('error')}  cause: {desc.get('cause')}")
    return 0 if desc["status"] == "SUCCEEDED" else 1


def _started(target: Target, arn: str, wait: bool, timeout: float, as_json: bool) -> None:
    """After start/rerun: the ARN (with --json, a JSON object: with --wait, how it ended)."""
    if not as_json:
        click.echo(arn)
    if wait:
        sys.exit(_wait(target, arn, timeout, as_json))
    if as_json:
        _echo_json({"executionArn": arn, "name": arn.rsplit(":", 1)[-1]})


@main.command()
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    help="JSON payload (a partial PipelineInput; default {}: config/pipeline.yaml as is).",
)
@click.option("--name", help="Execution name (default: manual-<timestamp>-<random>).")
@click.option(
    "--wait", is_flag=True, help="Follow the execution until it ends; exit 1 unless SUCCEEDED."
)
@click.option(
    "--timeout",
    type=float,
    default=3600,
    show_default=True,
    help="With --wait: give up after this many seconds.",
)
@json_option
@aws_options
@_user_errors
def start(
    input_path: Path | None, name: str | None, wait: bool, timeout: float, as_json: bool, **aws: Any
) -> None:
    """Start an execution with a JSON payload; it is validated first (every bad field listed)."""
    from sfn_mlops.payload import load, problems, size_problem

    payload = load(input_path) if input_path else {}
    body = json.dumps(payload)
    too_large = size_problem(body)
    if too_large:
        raise UserError(too_large)
    bad = problems(payload)
    if bad:
        raise UserError("the payload is invalid:\n  " + "\n  ".join(bad))
    target = _target(**aws)
    sm = target.resolve_state_machine()
    name = name or f"manual-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    out = call(
        target.client("stepfunctions").start_execution,
        stateMachineArn=sm,
        name=name,
        input=body,
    )
    _started(target, out["executionArn"], wait, timeout, as_json)


@main.command()
@click.option(
    "--status",
    type=click.Choice(
        ["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"]
    ),
    help="Only these.",
)
@click.option("--max", "max_items", type=int, default=20, show_default=True)
@json_option
@aws_options
@_user_errors
def executions(status: str | None, max_items: int, as_json: bool, **aws: Any) -> None:
    """List the pipeline's recent executions."""
    target = _target(**aws)
    kwargs: dict[str, Any] = {
        "stateMachineArn": target.resolve_state_machine(),
        "maxResults": max_items,
    }
    if status:
        kwargs["statusFilter"] = status
    out = call(target.client("stepfunctions").list_executions, **kwargs)
    rows = [
        {
            "name": e["name"],
            "executionArn": e["executionArn"],
            "status": e["status"],
            "startDate": e["startDate"],
            "stopDate": e.get("stopDate"),
            "seconds": (e["stopDate"] - e["startDate"]).total_seconds()
            if e.get("stopDate")
            else None,
        }
        for e in out["executions"]
    ]
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no executions")
    for e in rows:
        secs = f"{e['seconds']:.1f}s" if e["seconds"] is not None else "-"
        click.echo(
            f"{e['name']:<60} {e['status']:<10} {e['startDate']:%Y-%m-%d %H:%M:%S} {secs:>8}"
        )


@main.command()
@click.argument("execution")
@json_option
@aws_options
@_user_errors
def describe(execution: str, as_json: bool, **aws: Any) -> None:
    """Show an execution (name or ARN): status, each state, failure cause, gate decision.
    Exit 1 if it FAILED, TIMED_OUT or ABORTED (so scripts can branch on it)."""
    target = _target(**aws)
    info = _execution_info(target, target.execution_arn(execution))
    if as_json:
        _echo_json(info)
    else:
        _print_execution(info)
    sys.exit(1 if info["status"] in FAILED_STATUSES else 0)


@main.command()
@click.argument("execution")
@click.option("--name", help="Name of the new execution (default: <old>-rerun-<random>).")
@click.option("--wait", is_flag=True, help="Follow the new execution until it ends.")
@json_option
@aws_options
@_user_errors
def rerun(execution: str, name: str | None, wait: bool, as_json: bool, **aws: Any) -> None:
    """Start a NEW execution with the same input (the console's "New execution")."""
    target = _target(**aws)
    sfn = target.client("stepfunctions")
    desc = call(sfn.describe_execution, executionArn=target.execution_arn(execution))
    name = name or f"{desc['name'][:60]}-rerun-{uuid.uuid4().hex[:6]}"
    out = call(
        sfn.start_execution, stateMachineArn=desc["stateMachineArn"], name=name, input=desc["input"]
    )
    _started(target, out["executionArn"], wait, 3600, as_json)


@main.command()
@click.argument("execution")
@click.option("--wait", is_flag=True, help="Follow the execution until it ends again.")
@json_option
@aws_options
@_user_errors
def redrive(execution: str, wait: bool, as_json: bool, **aws: Any) -> None:
    """Redrive a failed execution: continue from the failed state with the same input and
    ARN; succeeded states are not run again (RedriveExecution)."""
    target = _target(**aws)
    sfn = target.client("stepfunctions")
    arn = target.execution_arn(execution)
    out = call(sfn.redrive_execution, executionArn=arn)
    if as_json and not wait:
        _echo_json({"executionArn": arn, "redriveDate": out["redriveDate"]})
        return
    click.echo(f"redriven {arn} at {out['redriveDate']}", err=as_json)
    if wait:
        sys.exit(_wait(target, arn, 3600, as_json))


def _decide(name: str, approve: bool, reason: str, as_json: bool, aws: dict[str, Any]) -> None:
    from sfn_mlops import promotion

    target = _target(**aws)
    if promotion.is_package(name):
        result = promotion.decide_package(target, name, approve, reason)
    else:
        arn = promotion.decide_execution(target, name, approve, reason)
        result = {"executionArn": arn, "approved": approve}
    if as_json:
        _echo_json(result)
    else:
        what = "approved" if approve else "rejected"
        click.echo(f"{what}: {result.get('executionArn') or result['model_package_arn']}")


@main.command()
@click.argument("name", metavar="EXECUTION|PACKAGE_ARN")
@click.option("--reason", default="", help="Why (the approval's reason / ApprovalDescription).")
@json_option
@aws_options
@_user_errors
def approve(name: str, reason: str, as_json: bool, **aws: Any) -> None:
    """Approve: an EXECUTION waiting at WaitForApproval is promoted to production (its task
    token, SendTaskSuccess); a model PACKAGE ARN becomes Approved in the registry, which
    starts its deployment (staging, checks, production)."""
    _decide(name, True, reason, as_json, aws)


@main.command()
@click.argument("name", metavar="EXECUTION|PACKAGE_ARN")
@click.option("--reason", default="", help="Why (the execution's failure cause).")
@json_option
@aws_options
@_user_errors
def reject(name: str, reason: str, as_json: bool, **aws: Any) -> None:
    """Reject: an EXECUTION waiting at WaitForApproval fails there with PromotionRejected
    (production unchanged); a model PACKAGE ARN becomes Rejected (nothing is deployed)."""
    _decide(name, False, reason, as_json, aws)


@main.command()
@click.option("--endpoint", "endpoint_name", required=True, help="SageMaker endpoint name.")
@click.argument("rows", nargs=-1, required=True)
@json_option
@aws_options
@_user_errors
def invoke(endpoint_name: str, rows: tuple[str, ...], as_json: bool, **aws: Any) -> None:
    """Predictions for ROWS: a CSV file (the training columns minus the target, raw values:
    categories as text; a header row naming the columns maps them by name), `-` for
    standard input, or rows of numbers themselves, e.g. `invoke --endpoint E "1,2,3"`."""
    header, lines = _csv_rows(rows)
    target = _target(**aws)
    out = call(
        target.client("sagemaker-runtime").invoke_endpoint,
        EndpointName=endpoint_name,
        ContentType="text/csv",
        Accept="application/json",
        Body="\n".join([header, *lines] if header else lines).encode(),
    )
    body = out["Body"].read().decode()
    if not as_json:
        click.echo(body)
        return
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = body
    _echo_json({"endpoint": endpoint_name, "rows": len(lines), "response": parsed})


def _csv_rows(args: tuple[str, ...]) -> tuple[str | None, list[str]]:
    """The header (if any) and the data rows of the ROWS arguments: files, `-` (stdin) or
    rows of numbers, in order. A file's rows are sent as they are (raw categorical values);
    a first line that is not all numbers is its header, sent once (the model server maps
    the columns by name); a later file's header must be the same."""
    header: str | None = None
    lines: list[str] = []
    for arg in args:
        if arg == "-":
            text, source = sys.stdin.read(), "standard input"
        elif Path(arg).is_file():
            text, source = Path(arg).read_text(), arg
        elif _numeric(arg.splitlines()[0] if arg.strip() else ""):
            text, source = arg, "the command line"
        else:
            raise UserError(
                f"ROWS {arg!r} is neither a file nor a CSV row of numbers "
                '(e.g. "17.9,10.4,122.8"); pass a file, - for stdin, or the rows'
            )
        found = [ln for ln in text.splitlines() if ln.strip()]
        if found and not _numeric(found[0]):  # a header line
            if header is not None and found[0] != header:
                raise UserError(f"{source}: its header differs from the first file's")
            header, found = found[0], found[1:]
        if not found:
            raise UserError(f"{source} has no data rows")
        lines.extend(found)
    return header, lines


def _numeric(line: str) -> bool:
    try:
        [float(x) for x in line.split(",")]
    except ValueError:
        return False
    return True


@main.command()
@click.argument("execution")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The HTML file to write (default: ./report-<execution>.html).",
)
@json_option
@aws_options
@_user_errors
def report(execution: str, out: Path | None, as_json: bool, **aws: Any) -> None:
    """One self-contained HTML page about an execution (opens with no network): workflow
    graph colored by outcome, timeline of states and jobs, gate decision, champion vs
    challenger metrics and plots, feature importance, data profile, console links."""
    from sfn_mlops.report import collect
    from sfn_mlops.report.page import write_report

    target = _target(**aws)
    arn = target.execution_arn(execution)
    data = call(collect, target, arn, target.session().region_name, not target.is_local)
    path = write_report(data, out or Path(f"report-{data.name}.html"))
    if as_json:
        _echo_json(
            {
                "report": str(path),
                "execution": arn,
                "status": data.status,
                "problems": data.problems,
            }
        )
    else:
        click.echo(str(path))


@main.command()
@click.argument("execution")
@click.option("--state", "state_name", help="Only this state's lines (e.g. PollTraining).")
@json_option
@aws_options
@_user_errors
def logs(execution: str, state_name: str | None, as_json: bool, **aws: Any) -> None:
    """The Lambda, SageMaker job and endpoint logs of an execution, oldest first, from
    CloudWatch Logs (on AWS, or the local cloud's own: same group names)."""
    from sfn_mlops.logs import execution_logs

    target = _target(**aws)
    lines = call(execution_logs, target, target.execution_arn(execution), state_name)
    if as_json:
        _echo_json([line.as_json() for line in lines])
        return
    if not lines:
        click.echo("no log lines for this execution (yet)", err=True)
    for line in lines:
        jobs = line.group.startswith("/aws/sagemaker/") and "Jobs" in line.group
        where = line.stream.split("/", 1)[0] if jobs else line.group.rsplit("/", 1)[-1]
        click.echo(f"{line.timestamp:%H:%M:%S.%f}"[:-3] + f"  {where:<22} {line.message}")


if __name__ == "__main__":
    main()
