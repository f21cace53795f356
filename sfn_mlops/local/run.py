"""`sfn-mlops local run`: the whole pipeline on this machine, as it runs on AWS.

Up the local cloud, deploy the stack, seed the default data set, push the image (ECR
event -> rule -> trigger Lambda -> execution 1), follow it, call the inference Lambda,
upload a new batch of data (S3 event -> execution 2: retrain, compare with the champion,
deploy only if better), then summarise and keep each execution's artifacts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfn_mlops.history import failure, last_state_data, pretty_cause
from sfn_mlops.local.cloud import LocalCloud
from sfn_mlops.local.stack import Stack, deploy, enable_triggers, push_image
from sfn_mlops.progress import PlainView, RichView, follow, make_view
from sfn_mlops.report import collect
from sfn_mlops.report.page import write_index, write_report
from shared import resources

DATASET = "breast_cancer"
#: The data sets that ship with the container (no download): rows in the first data set
#: (the rest arrive later as a new batch) and the pipeline settings they need.
DATASETS: dict[str, tuple[int, dict[str, Any]]] = {
    "breast_cancer": (400, {}),
    "diabetes": (
        300,
        {
            "problem_type": "regression",
            "objective": {"name": "rmse", "goal": "minimize", "threshold": 80.0},
        },
    ),
}
EXECUTION_TIMEOUT = 600.0
EXPORT_TIMEOUT = 300.0  # the data exporter (a shipped data set: seconds)
REPORT_TIMEOUT = 300.0  # one report page (seconds of plots)
SAMPLE_CSV = "sample.csv"  # the first execution's sample rows, for `sfn-mlops invoke`


@dataclass
class ExecutionReport:
    name: str
    trigger: str
    status: str
    seconds: float
    describe: dict[str, Any]
    history: list[dict[str, Any]]
    output: dict[str, Any] = field(default_factory=dict)
    failure: tuple[str, str, str] | None = None
    artifacts: Path | None = None
    prediction: dict[str, Any] | None = None


def default_run_dir() -> Path:
    return Path("runs") / dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def export_dataset(out_dir: Path, dataset: str = DATASET) -> tuple[Path, Path]:
    """A data set via the container's exporter, split into a seed set and a later batch
    (same header)."""
    return DataExport(out_dir, dataset)()


class DataExport:
    """export_dataset in the background: the exporter (a process of its own) runs while the
    caller does something else; calling the result waits for it and splits the rows;
    cancel() stops it (the caller failed before it needed the data)."""

    def __init__(self, out_dir: Path, dataset: str = DATASET) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir, self.dataset = out_dir, dataset
        argv = [sys.executable, "-m", "sfn_container", "data", "--dataset", dataset]
        self.proc = subprocess.Popen(
            [*argv, "--out", str(out_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def __call__(self) -> tuple[Path, Path]:
        out, err = self.proc.communicate(timeout=EXPORT_TIMEOUT)
        if self.proc.returncode:
            raise subprocess.CalledProcessError(self.proc.returncode, self.proc.args, out, err)
        lines = (self.out_dir / f"{self.dataset}.csv").read_text().splitlines(keepends=True)
        header, rows = lines[0], lines[1:]
        seed_rows = DATASETS[self.dataset][0]
        seed, batch = self.out_dir / "initial.csv", self.out_dir / "batch-0002.csv"
        seed.write_text(header + "".join(rows[:seed_rows]))
        batch.write_text(header + "".join(rows[seed_rows:]))
        return seed, batch

    def cancel(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def _executions(cloud: LocalCloud, stack: Stack) -> dict[str, str]:
    sfn = cloud.client("stepfunctions")
    out = sfn.list_executions(stateMachineArn=stack.state_machine_arn, maxResults=1000)
    return {e["name"]: e["executionArn"] for e in out["executions"]}


def wait_new_execution(
    cloud: LocalCloud, stack: Stack, known: set[str], timeout: float = 60.0
) -> tuple[str, str]:
    """The execution an event just started (the trigger Lambda runs asynchronously)."""

    def new() -> tuple[str, str] | None:
        fresh = {n: a for n, a in _executions(cloud, stack).items() if n not in known}
        return next(iter(fresh.items())) if fresh else None

    try:
        return cloud.wait_for(new, timeout=timeout, interval=0.1)  # type: ignore[no-any-return]
    except TimeoutError:
        errors = [d.error for d in cloud.events.deliveries if d.error]
        hint = f"; trigger errors: {errors[-1]}" if errors else ""
        raise RuntimeError(
            f"no execution started within {timeout:.0f}s of the event{hint}"
        ) from None


def run_execution(
    cloud: LocalCloud, arn: str, name: str, trigger: str, view: PlainView | RichView
) -> ExecutionReport:
    sfn = cloud.client("stepfunctions")
    view.start(f"{trigger}: execution {name}")
    try:
        desc, events = follow(sfn, arn, view, timeout=EXECUTION_TIMEOUT)
    finally:
        view.stop()
    stop = desc.get("stopDate") or dt.datetime.now(tz=dt.UTC)
    seconds = (stop - desc["startDate"]).total_seconds()
    report = ExecutionReport(name, trigger, desc["status"], seconds, desc, events)
    if desc["status"] == "SUCCEEDED":
        report.output = json.loads(desc.get("output") or "{}")
    else:
        report.failure = failure(events) or ("?", str(desc.get("error")), str(desc.get("cause")))
    return report


def invoke_inference(
    cloud: LocalCloud, stack: Stack, report: ExecutionReport, sample_uri: str
) -> dict[str, Any]:
    """The inference Lambda on the deployed endpoint, with the sample rows given (the same
    rows after every execution, so the predictions differ only if the model changed)."""
    out = report.output
    endpoint = (out.get("deploy") or {}).get("endpoint_name") or out["config"]["endpoint_name"]
    payload = {"endpoint_name": endpoint, "sample_uri": sample_uri}
    resp = cloud.client("lambda").invoke(
        FunctionName=resources.FUNCTIONS_BY_KEY["invoke"].function_name, Payload=json.dumps(payload)
    )
    body = json.loads(resp["Payload"].read() or b"{}")
    if resp.get("FunctionError"):
        raise RuntimeError(
            f"inference Lambda failed: {body.get('errorType')}: {body.get('errorMessage')}"
        )
    return body  # type: ignore[no-any-return]


def _download(cloud: LocalCloud, uri: str | None, dest: Path) -> bool:
    if not uri or not uri.startswith("s3://"):
        return False
    bucket, _, key = uri[5:].partition("/")
    try:
        cloud.client("s3").download_file(bucket, key, str(dest))
    except Exception:
        return False
    return True


class ReportPages:
    """Report pages drawn in a process of their own while the run goes on (matplotlib's
    import and plots were seconds of this process' CPU between the executions, holding the
    GIL the local cloud's server needs); wait() before anything lists them."""

    def __init__(self) -> None:
        import multiprocessing
        from concurrent.futures import Future, ProcessPoolExecutor

        # spawn: this process has threads (the local cloud's), which fork does not carry
        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        self._pending: list[Future[Path]] = []

    def write(self, data: Any, out: Path) -> None:
        self._pending.append(self._pool.submit(write_report, data, out))

    def wait(self) -> None:
        """Every page submitted is written (its error, if any, raised here)."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result(timeout=REPORT_TIMEOUT)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def save_artifacts(
    cloud: LocalCloud, report: ExecutionReport, run_dir: Path, pages: ReportPages | None = None
) -> Path:
    """model.tar.gz, evaluation.json, history.json, execution.json and report.html of one
    execution (the page by `pages` when given: written once pages.wait() returns)."""
    dest = run_dir / report.name
    dest.mkdir(parents=True, exist_ok=True)
    data = last_state_data(report.history, report.output)
    _download(cloud, (data.get("train") or {}).get("model_artifact_uri"), dest / "model.tar.gz")
    _download(cloud, (data.get("evaluate") or {}).get("report_uri"), dest / "evaluation.json")
    (dest / "history.json").write_text(json.dumps(report.history, indent=2, default=str))
    (dest / "execution.json").write_text(json.dumps(report.describe, indent=2, default=str))
    data = collect(cloud, report.describe["executionArn"], cloud.region, on_aws=False)
    if pages is None:
        write_report(data, dest / "report.html")
    else:
        pages.write(data, dest / "report.html")
    report.artifacts = dest
    return dest


def _cli_path() -> str:
    """This `sfn-mlops`, as the user can type it from here (.venv/bin/sfn-mlops for make run)."""
    path = Path(sys.executable).parent / "sfn-mlops"
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _index_entry(r: ExecutionReport) -> dict[str, Any]:
    return {
        "name": r.name,
        "trigger": r.trigger,
        "status": r.status,
        "seconds": r.seconds,
        "gate": r.output.get("gate"),
        "failure": r.failure,
        "report": f"{r.name}/report.html" if r.artifacts else None,
    }


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def summary(
    reports: list[ExecutionReport],
    cloud: LocalCloud,
    stack: Stack,
    run_dir: Path,
    wall: float,
    extra: list[str] | None = None,
) -> str:
    """What the run did; `extra`: a scenario's own lines, after the executions' gates."""
    lines = ["", f"Summary  (run dir: {run_dir})", "  executions:"]
    for r in reports:
        lines.append(f"    {r.name}  {r.status}  {r.seconds:.1f}s  ({r.trigger})")
        if r.failure:
            state, error, cause = r.failure
            lines.append(f"      failed at {state}: {error}: {pretty_cause(cause, 400)}")
    for r in reports:
        gate = r.output.get("gate")
        if not gate:
            continue
        champion = gate.get("champion")
        decision = (
            "deploy"
            if gate.get("deploy")
            else ("approved, not deployed" if gate.get("passed") else "rejected")
        )
        lines.append(
            f"  {r.name[:40]}: {gate.get('metric')} challenger {_fmt(gate.get('challenger'))}"
            f" vs champion {_fmt(champion) if champion is not None else '(none)'} -> {decision}"
        )
        for reason in gate.get("reasons", []):
            lines.append(f"      - {reason}")
    lines.extend(extra or [])
    endpoint_name = stack.defaults.get("endpoint_name", "")
    cli = _cli_path()
    try:
        ep = cloud.client("sagemaker").describe_endpoint(EndpointName=endpoint_name)
        lines.append(
            f"  endpoint: {endpoint_name}  {ep['EndpointStatus']}  "
            f"config {ep['EndpointConfigName']}  (stopped with this run)"
        )
        lines.append(
            "  to predict yourself, keep a local cloud running and train into it:\n"
            f"      {cli} local up &            # in memory: gone when it stops\n"
            f"      {cli} start --local --wait  # once it is up: train and deploy\n"
            f"      {cli} invoke --local --endpoint {endpoint_name} {run_dir / SAMPLE_CSV}"
        )
    except Exception:
        lines.append(f"  endpoint: {endpoint_name} (not created)")
    for r in reports:
        if r.prediction:
            preds = [round(p, 4) for p in r.prediction.get("predictions", [])]
            lines.append(
                f"  prediction after {r.name[:40]}: {preds} "
                f"({r.prediction.get('row_count')} sample rows)"
            )
    lines.append("  artifacts:")
    for r in reports:
        if r.artifacts:
            files = ", ".join(sorted(p.name for p in r.artifacts.iterdir()))
            lines.append(f"    {r.artifacts}: {files}")
    lines.append(f"  report: {run_dir / 'index.html'}")
    lines.append(f"  wall time: {wall:.1f}s")
    return "\n".join(lines)


def start_stack(
    cloud: LocalCloud,
    run_dir: Path,
    dataset: str,
    overrides: dict[str, Any] | None,
    exported: DataExport | None = None,
) -> tuple[Stack, Path, Path]:
    """Deploy the stack, warm its functions, seed the data set's first rows (before the
    triggers, so seeding starts nothing), enable the triggers. (stack, seed CSV, batch CSV).
    `exported`: the data set's export, started earlier (beside the cloud's start)."""
    settings = {**DATASETS[dataset][1], **(overrides or {})}
    stack = deploy(cloud, overrides=settings, triggers=False)
    for spec in resources.FUNCTIONS:  # provisioned concurrency, so to speak
        cloud.lambdas.warm(spec.function_name)
    seed, batch = (exported or DataExport(run_dir / "data", dataset))()
    cloud.client("s3").upload_file(str(seed), stack.bucket, f"{resources.DATA_PREFIX}{seed.name}")
    enable_triggers(cloud, stack)
    cloud.lambdas.wait_warm()
    print(
        f"local cloud at {cloud.endpoint_url}; stack deployed; seed data at "
        f"{stack.data_uri}{seed.name}",
        flush=True,
    )
    return stack, seed, batch


def triggered_run(
    cloud: LocalCloud,
    stack: Stack,
    trigger: str,
    fire: Any,
    view: PlainView | RichView,
    run_dir: Path,
    pages: ReportPages | None = None,
) -> ExecutionReport:
    """`fire()` an event, follow the execution it starts to its end, keep its artifacts."""
    known = set(_executions(cloud, stack))
    fire()
    name, arn = wait_new_execution(cloud, stack, known)
    report = run_execution(cloud, arn, name, trigger, view)
    save_artifacts(cloud, report, run_dir, pages)
    return report


def keep_sample(cloud: LocalCloud, report: ExecutionReport, run_dir: Path) -> str:
    """The execution's sample rows (preprocess' sample output, a prefix holding sample.csv),
    downloaded to the run dir for `sfn-mlops invoke`; their S3 URI."""
    sample_uri = str(report.output["preprocess"]["sample_uri"])
    _download(cloud, f"{sample_uri.rstrip('/')}/{SAMPLE_CSV}", run_dir / SAMPLE_CSV)
    return sample_uri


def finish(
    reports: list[ExecutionReport],
    cloud: LocalCloud,
    stack: Stack,
    run_dir: Path,
    started: float,
    extra: list[str] | None = None,
    pages: ReportPages | None = None,
) -> str:
    """The summary (with a scenario's `extra` lines) and the run's index page (once
    `pages` has written every report page)."""
    if pages is not None:
        pages.wait()
    text = summary(reports, cloud, stack, run_dir, time.monotonic() - started, extra)
    write_index(run_dir / "index.html", [_index_entry(r) for r in reports], text)
    return text


def exit_code(reports: list[ExecutionReport], text: str, run_dir: Path) -> int:
    """Print the summary; 1 (with the failed state and its cause) if an execution failed."""
    print(text, flush=True)
    (run_dir / "summary.txt").write_text(text + "\n")
    print(f"\nopen {(run_dir / 'index.html').resolve()}", flush=True)
    failed = [r for r in reports if r.status != "SUCCEEDED"]
    if failed:
        state, error, cause = failed[0].failure or ("?", "?", "?")
        print(
            f"\nFAILED: execution {failed[0].name} failed at state {state}: {error}: "
            f"{pretty_cause(cause, 800)}",
            file=sys.stderr,
        )
        return 1
    return 0


def local_run(
    run_dir: Path,
    port: int = 0,
    plain: bool | None = None,
    overrides: dict[str, Any] | None = None,
    dataset: str = DATASET,
) -> int:
    started = time.monotonic()
    run_dir.mkdir(parents=True, exist_ok=True)
    view = make_view(plain)
    reports: list[ExecutionReport] = []
    print(f"sfn-mlops local run -> {run_dir}", flush=True)
    # the exporter runs beside the cloud's start and the deploy (another core, another process)
    exported = DataExport(run_dir / "data", dataset)
    with contextlib.ExitStack() as resources_:
        resources_.callback(exported.cancel)
        pages = resources_.enter_context(contextlib.closing(ReportPages()))
        cloud = resources_.enter_context(LocalCloud(port=port, workdir=run_dir / "cloud"))
        stack, _seed, batch = start_stack(cloud, run_dir, dataset, overrides, exported)
        s3 = cloud.client("s3")
        steps: list[tuple[str, Any]] = [
            ("ECR image push", lambda: push_image(cloud, stack, label=f"sfn-mlops {time.time()}")),
            (
                "new data in S3",
                lambda: s3.upload_file(
                    str(batch), stack.bucket, f"{resources.DATA_PREFIX}{batch.name}"
                ),
            ),
        ]
        sample_uri: str | None = None
        for trigger, fire in steps:
            report = triggered_run(cloud, stack, trigger, fire, view, run_dir, pages)
            reports.append(report)
            if report.status != "SUCCEEDED":
                break
            sample_uri = sample_uri or keep_sample(cloud, report, run_dir)  # the same rows
            report.prediction = invoke_inference(cloud, stack, report, sample_uri)
        text = finish(reports, cloud, stack, run_dir, started, pages=pages)
    return exit_code(reports, text, run_dir)
