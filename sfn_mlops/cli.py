"""`sfn-mlops`: run the pipeline locally, or drive it on AWS (or a running local cloud).

    sfn-mlops local run                 the whole pipeline on this machine (make run)
    sfn-mlops local up                  a local cloud to point the AWS CLI / boto3 at
    sfn-mlops start --input p.json      start an execution with a payload
    sfn-mlops executions                list recent executions
    sfn-mlops describe EXECUTION        status, states, error and cause, gate decision
    sfn-mlops rerun EXECUTION           a new execution with the same input ("New execution")
    sfn-mlops redrive EXECUTION         continue a failed execution from its failed state
    sfn-mlops invoke --endpoint N r.csv predictions from an endpoint

AWS commands use the standard credential chain (--profile, --region); --local (or
--endpoint-url) talks to a local cloud started with `sfn-mlops local up`.
"""

from __future__ import annotations

import functools
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from sfn_mlops.aws import DEFAULT_LOCAL_PORT, Target, UserError, call, local_endpoint

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
@_user_errors
def local_run_cmd(run_dir: Path | None, port: int, plain: bool | None, baseline: bool) -> None:
    """Run the whole pipeline locally: image push -> training execution -> endpoint ->
    prediction; new data -> retraining compared with the champion. Exit 1 on failure."""
    from sfn_mlops.local import procs
    from sfn_mlops.local.run import default_run_dir, local_run

    procs.install_signal_handlers()
    run_dir = run_dir or default_run_dir()
    code = local_run(run_dir, port=port, plain=plain)
    if baseline and code == 0:
        from sfn_mlops.local.baseline import bare_scripts

        seconds = bare_scripts(run_dir / "data" / "initial.csv", run_dir / "baseline")
        click.echo(f"bare scripts (preprocess + train + evaluate, same data): {seconds:.1f}s")
    sys.exit(code)


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
@_user_errors
def local_up_cmd(port: int, workdir: Path | None, no_data: bool) -> None:
    """Keep a local cloud with the stack deployed running until Ctrl-C, and print what
    to export so that the AWS CLI and boto3 reach it."""
    import threading

    from sfn_mlops.local import procs
    from sfn_mlops.local.cloud import LocalCloud, PortInUseError
    from sfn_mlops.local.run import export_dataset
    from sfn_mlops.local.stack import deploy, enable_triggers
    from shared import resources

    if port and procs.port_in_use(port):
        raise PortInUseError("127.0.0.1", port)
    procs.install_signal_handlers()
    with LocalCloud(port=port, workdir=workdir) as cloud:
        stack = deploy(cloud, triggers=False)
        if not no_data:
            seed, _ = export_dataset(cloud.workdir / "data")
            cloud.client("s3").upload_file(
                str(seed), stack.bucket, f"{resources.DATA_PREFIX}{seed.name}"
            )
        enable_triggers(cloud, stack)
        env = cloud.env()
        click.echo(f"local cloud running at {cloud.endpoint_url}  (Ctrl-C to stop)")
        click.echo("# export these for the AWS CLI / boto3:")
        for key, value in env.items():
            click.echo(f"export {key}={value}")
        click.echo(f"export SFN_MLOPS_STATE_MACHINE_ARN={stack.state_machine_arn}")
        click.echo(f"export {('SFN_MLOPS_LOCAL_PORT')}={cloud.port}")
        click.echo(f"# bucket: {stack.bucket}  repository: {stack.repository_uri}")
        click.echo(
            "# notifications (failed executions, outcomes): "
            f"aws sqs receive-message --queue-url {stack.notification_queue_url}"
        )
        click.echo(
            f"# e.g. aws --endpoint-url {cloud.endpoint_url} stepfunctions start-execution "
            f"--state-machine-arn {stack.state_machine_arn} --input file://payload.json"
        )
        sys.stdout.flush()
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            click.echo("stopping the local cloud")


# --- executions ----------------------------------------------------------------------------
def _print_execution(target: Target, arn: str) -> str:
    from sfn_mlops.history import failure, note, pretty_cause, state_runs
    from sfn_mlops.progress import get_history

    sfn = target.client("stepfunctions")
    desc = call(sfn.describe_execution, executionArn=arn)
    events = call(get_history, sfn, arn)
    click.echo(f"{desc['name']}  {desc['status']}")
    click.echo(f"  arn:     {desc['executionArn']}")
    click.echo(
        f"  started: {desc['startDate']}"
        + (f"  stopped: {desc['stopDate']}" if desc.get("stopDate") else "")
    )
    if desc.get("redriveCount"):
        click.echo(f"  redrives: {desc['redriveCount']} (last {desc.get('redriveDate')})")
    if desc.get("redriveStatus"):
        reason = desc.get("redriveStatusReason")
        click.echo(f"  redrive: {desc['redriveStatus']}" + (f" ({reason})" if reason else ""))
    click.echo("  states:")
    round_ = 0
    for run in state_runs(events):
        if run.type in ("Choice", "Pass"):
            continue
        if run.redrive != round_:
            round_ = run.redrive
            click.echo(f"    -- redrive {round_}: continues from {run.name} --")
        secs = f"{run.seconds:.2f}s" if run.seconds is not None else "-"
        extra = f" ({note(run)})" if note(run) else ""
        click.echo(f"    {run.name:<26} {run.status:<10} {secs:>8}{extra}")
    if desc["status"] in ("FAILED", "TIMED_OUT", "ABORTED"):
        where = failure(events)
        if where:
            click.echo(f"  failed at {where[0]}: {where[1]}: {pretty_cause(where[2], 1000)}")
        else:
            click.echo(f"  error: {desc.get('error')}  cause: {desc.get('cause')}")
    if desc.get("output"):
        out = json.loads(desc["output"])
        gate = out.get("gate") if isinstance(out, dict) else None
        if gate:
            click.echo(
                f"  gate: {gate.get('metric')} challenger {gate.get('challenger')} champion "
                f"{gate.get('champion')} -> {'deploy' if gate.get('deploy') else 'no deploy'}"
            )
            for reason in gate.get("reasons", []):
                click.echo(f"    - {reason}")
    return str(desc["status"])


def _wait(target: Target, arn: str, timeout: float) -> int:
    from sfn_mlops.progress import follow, make_view

    view = make_view()
    view.start(f"execution {arn.rsplit(':', 1)[-1]}")
    try:
        desc, _ = call(follow, target.client("stepfunctions"), arn, view, timeout)
    finally:
        view.stop()
    click.echo(f"{desc['name']}: {desc['status']}")
    return 0 if desc["status"] == "SUCCEEDED" else 1


@main.command()
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(path_type=Path),
    help="JSON payload (a partial PipelineInput).",
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
@aws_options
@_user_errors
def start(input_path: Path, name: str | None, wait: bool, timeout: float, **aws: Any) -> None:
    """Start an execution with a JSON payload; it is validated first (every bad field listed)."""
    from sfn_mlops.payload import load, problems

    payload = load(input_path)
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
        input=json.dumps(payload),
    )
    click.echo(out["executionArn"])
    if wait:
        sys.exit(_wait(target, out["executionArn"], timeout))


@main.command()
@click.option(
    "--status",
    type=click.Choice(
        ["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"]
    ),
    help="Only these.",
)
@click.option("--max", "max_items", type=int, default=20, show_default=True)
@aws_options
@_user_errors
def executions(status: str | None, max_items: int, **aws: Any) -> None:
    """List the pipeline's recent executions."""
    target = _target(**aws)
    kwargs: dict[str, Any] = {
        "stateMachineArn": target.resolve_state_machine(),
        "maxResults": max_items,
    }
    if status:
        kwargs["statusFilter"] = status
    out = call(target.client("stepfunctions").list_executions, **kwargs)
    if not out["executions"]:
        click.echo("no executions")
    for e in out["executions"]:
        stop = e.get("stopDate")
        secs = f"{(stop - e['startDate']).total_seconds():.1f}s" if stop else "-"
        click.echo(
            f"{e['name']:<60} {e['status']:<10} {e['startDate']:%Y-%m-%d %H:%M:%S} {secs:>8}"
        )


@main.command()
@click.argument("execution")
@aws_options
@_user_errors
def describe(execution: str, **aws: Any) -> None:
    """Show an execution (name or ARN): status, each state, failure cause, gate decision."""
    target = _target(**aws)
    _print_execution(target, target.execution_arn(execution))


@main.command()
@click.argument("execution")
@click.option("--name", help="Name of the new execution (default: <old>-rerun-<random>).")
@click.option("--wait", is_flag=True, help="Follow the new execution until it ends.")
@aws_options
@_user_errors
def rerun(execution: str, name: str | None, wait: bool, **aws: Any) -> None:
    """Start a NEW execution with the same input (the console's "New execution")."""
    target = _target(**aws)
    sfn = target.client("stepfunctions")
    desc = call(sfn.describe_execution, executionArn=target.execution_arn(execution))
    name = name or f"{desc['name'][:60]}-rerun-{uuid.uuid4().hex[:6]}"
    out = call(
        sfn.start_execution, stateMachineArn=desc["stateMachineArn"], name=name, input=desc["input"]
    )
    click.echo(out["executionArn"])
    if wait:
        sys.exit(_wait(target, out["executionArn"], 3600))


@main.command()
@click.argument("execution")
@click.option("--wait", is_flag=True, help="Follow the execution until it ends again.")
@aws_options
@_user_errors
def redrive(execution: str, wait: bool, **aws: Any) -> None:
    """Redrive a failed execution: continue from the failed state with the same input and
    ARN; succeeded states are not run again (RedriveExecution)."""
    target = _target(**aws)
    sfn = target.client("stepfunctions")
    arn = target.execution_arn(execution)
    out = call(sfn.redrive_execution, executionArn=arn)
    click.echo(f"redriven {arn} at {out['redriveDate']}")
    if wait:
        sys.exit(_wait(target, arn, 3600))


@main.command()
@click.option("--endpoint", "endpoint_name", required=True, help="SageMaker endpoint name.")
@click.argument("rows", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@aws_options
@_user_errors
def invoke(endpoint_name: str, rows: Path, **aws: Any) -> None:
    """Predictions for the CSV ROWS (features only; a header line is skipped)."""
    lines = [ln for ln in rows.read_text().splitlines() if ln.strip()]
    if lines and not _numeric(lines[0]):
        lines = lines[1:]
    if not lines:
        raise UserError(f"{rows} has no data rows")
    target = _target(**aws)
    out = call(
        target.client("sagemaker-runtime").invoke_endpoint,
        EndpointName=endpoint_name,
        ContentType="text/csv",
        Accept="application/json",
        Body="\n".join(lines).encode(),
    )
    click.echo(out["Body"].read().decode())


def _numeric(line: str) -> bool:
    try:
        [float(x) for x in line.split(",")]
    except ValueError:
        return False
    return True


if __name__ == "__main__":
    main()
