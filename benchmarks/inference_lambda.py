"""Figure 4 — the inference Lambda: a warm ``Invoke`` of ``sfn-mlops-invoke`` through the local
cloud against a direct HTTP call to the model server behind the endpoint.

Set-up (not timed): the local cloud as ``sfn-mlops local run`` starts it (stack deployed
from shared.resources, the invoke function's worker warmed), a model trained by the
container entrypoints on the default data set, uploaded as model.tar.gz, and an endpoint
created through the SageMaker API (CreateModel -> CreateEndpointConfig -> CreateEndpoint ->
InService: the local SageMaker starts ``python -m sfn_container serve``).

Subject: boto3 ``lambda.invoke`` with ``{"endpoint_name", "rows": [one row]}`` (the function's
real handler in its warm worker: parse, SageMaker runtime ``InvokeEndpoint`` through the local
cloud, parse the predictions, EMF metrics). Baseline: the same row (same body, same
Content-Type and Accept the handler sends) POSTed to the server's ``/invocations`` over a
keep-alive HTTP connection. Calls are interleaved (subject, baseline, and the layers in
between) after a warm-up, so load drift hits all alike.

Layers reported in the note (medians): ``sagemaker-runtime.invoke_endpoint`` through the local
cloud (what the handler calls), and ``LambdaRuntime.invoke`` (worker IPC + handler, without
the Lambda Invoke API hop). And a floor: the same boto3 ``invoke_endpoint`` against a trivial
WSGI app (a fixed answer, no moto) on the server moto runs on (werkzeug with keep-alive,
sfn_mlops/local/keepalive.py): what one boto3 call costs on this machine before any AWS
behaviour; the Lambda path makes two (the caller's Invoke, the handler's InvokeEndpoint).

``python -m benchmarks.inference_lambda [--quick]`` prints the rows as JSON.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import statistics
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks._common import figure, summarize
from benchmarks.orchestration import _entry, _env, _settings, _wait

ENDPOINT_TIMEOUT = 120.0
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process `pid` and its descendants, from /proc (0.0
    where /proc is absent): on 2 shared cores wall time mostly measures the neighbours'
    load, CPU per call says which layer does the work."""
    total, todo, seen = 0.0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICKS
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError, IndexError):
            continue
    return total


def train_model(csv_path: Path, root: Path) -> bytes:
    """model.tar.gz of the container's model trained on `csv_path` (preprocess + train)."""
    hps, config, _ = _settings()
    log = root / "train.log"
    pre, tr = root / "preprocess", root / "train"
    raw = pre / "processing" / "input" / "raw"
    raw.mkdir(parents=True)
    (raw / csv_path.name).write_bytes(csv_path.read_bytes())
    _entry("preprocess", _env(pre, **config), log)
    (tr / "input" / "data").mkdir(parents=True)
    for channel in ("train", "validation"):
        (pre / "processing" / "output" / channel).rename(tr / "input" / "data" / channel)
    (tr / "input" / "config").mkdir(parents=True)
    (tr / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hps))
    (tr / "model").mkdir()
    _entry("train", _env(tr), log)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted((tr / "model").rglob("*")):
            tar.add(path, arcname=path.relative_to(tr / "model").as_posix())
    return buf.getvalue()


def _feature_row(csv_path: Path, target: str) -> list[float]:
    with csv_path.open() as f:
        header = f.readline().strip().split(",")
        values = f.readline().strip().split(",")
    return [float(v) for h, v in zip(header, values, strict=True) if h != target]


def _create_endpoint(cloud: Any, stack: Any, model_tar: bytes) -> str:
    from shared import resources

    s3, sm = cloud.client("s3"), cloud.client("sagemaker")
    key = f"{resources.ARTIFACTS_PREFIX.rstrip('/')}/bench/model.tar.gz"
    s3.put_object(Bucket=stack.bucket, Key=key, Body=model_tar)
    role = cloud.client("iam").get_role(RoleName=f"{resources.PROJECT}-sagemaker")["Role"]["Arn"]
    defaults = stack.defaults
    sm.create_model(
        ModelName="bench-model",
        ExecutionRoleArn=role,
        PrimaryContainer={
            "Image": f"{stack.repository_uri}:latest",
            "ModelDataUrl": f"s3://{stack.bucket}/{key}",
            "Environment": {
                "TARGET_COLUMN": defaults["target_column"],
                "PROBLEM_TYPE": defaults["problem_type"],
            },
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName="bench-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "bench-model",
                "InitialInstanceCount": 1,
                "InstanceType": defaults["endpoint"]["instance_type"],
            }
        ],
    )
    endpoint = str(defaults["endpoint_name"])
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName="bench-config")

    def in_service() -> bool:
        status = sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"]
        if status == "Failed":
            raise RuntimeError(sm.describe_endpoint(EndpointName=endpoint).get("FailureReason"))
        return bool(status == "InService")

    _wait(in_service, ENDPOINT_TIMEOUT, interval=0.1)
    return endpoint


@contextlib.contextmanager
def _floor_client(answer: bytes) -> Iterator[Any]:
    """A sagemaker-runtime client for a trivial app answering `answer` (see the module doc)."""
    import boto3

    from sfn_mlops.local import keepalive
    from sfn_mlops.local.cloud import _Patches

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))],
        )
        return [answer]

    patches = _Patches()
    keepalive.patch_werkzeug(patches)
    server = keepalive.make_server("127.0.0.1", 0, app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield boto3.session.Session().client(
            "sagemaker-runtime",
            endpoint_url=f"http://127.0.0.1:{server.server_port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
    finally:
        server.shutdown()
        server.server_close()
        server.close_connections()
        patches.undo()


def measure(reps: int, warmup: int) -> dict[str, Any]:
    from functions.invoke.logic import parse_predictions
    from sfn_mlops.local.cloud import LocalCloud
    from sfn_mlops.local.run import export_dataset
    from sfn_mlops.local.stack import deploy
    from shared import resources

    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        root = Path(tmp)
        seed, _ = export_dataset(root / "data")
        model_tar = train_model(seed, root / "model")
        with LocalCloud(workdir=root / "cloud") as cloud, _floor_client(b"[0.5]") as floor:
            stack = deploy(cloud, triggers=False)
            function = resources.FUNCTIONS_BY_KEY["invoke"].function_name
            cloud.lambdas.warm(function)
            endpoint = _create_endpoint(cloud, stack, model_tar)
            server = cloud.sagemaker.servers[endpoint]
            port = server.port
            row = _feature_row(seed, stack.defaults["target_column"])
            event = {"endpoint_name": endpoint, "rows": [row]}
            payload = json.dumps(event)
            body = ",".join(repr(float(v)) for v in row) + "\n"  # what the handler sends
            headers = {"Content-Type": "text/csv", "Accept": "application/json"}
            lam, runtime = cloud.client("lambda"), cloud.client("sagemaker-runtime")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

            def via_lambda() -> float:
                resp = lam.invoke(FunctionName=function, Payload=payload)
                out = json.loads(resp["Payload"].read())
                if resp.get("FunctionError"):
                    raise RuntimeError(f"inference Lambda failed: {out}")
                return float(out["predictions"][0])

            def direct() -> float:
                conn.request("POST", "/invocations", body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"model server answered {resp.status}: {data[:200]!r}")
                return parse_predictions(data, endpoint)[0]  # as the handler reads it

            def invoke_endpoint(client: Any) -> Callable[[], bytes]:
                def call() -> bytes:
                    return bytes(
                        client.invoke_endpoint(
                            EndpointName=endpoint,
                            ContentType=headers["Content-Type"],
                            Accept=headers["Accept"],
                            Body=body.encode(),
                        )["Body"].read()
                    )

                return call

            via_runtime, via_floor = invoke_endpoint(runtime), invoke_endpoint(floor)

            def via_worker() -> Any:
                result = cloud.lambdas.invoke(function, event)
                if result.function_error:
                    raise RuntimeError(f"inference handler failed: {result.payload}")
                return result.payload

            calls = {
                "lambda": via_lambda,
                "direct": direct,
                "runtime": via_runtime,
                "worker": via_worker,
                "floor": via_floor,
            }
            for _ in range(warmup):
                for fn in calls.values():
                    fn()
            by_lambda, by_http = via_lambda(), direct()
            if abs(by_lambda - by_http) > 1e-6:
                raise RuntimeError(f"predictions differ: Lambda {by_lambda}, direct {by_http}")
            samples: dict[str, list[float]] = {name: [] for name in calls}
            # CPU seconds per call type: this process (the boto3 clients and moto's server,
            # which runs in-process), the function's warm worker, the model server
            pids = {"worker": cloud.lambdas.idle_pids(function), "model": [server.proc.pid]}
            cpu = {name: dict.fromkeys(("cloud", *pids), 0.0) for name in calls}

            def others() -> dict[str, float]:
                return {k: sum(_tree_cpu(p) for p in ps) for k, ps in pids.items()}

            for _ in range(reps):
                for name, fn in calls.items():
                    before = others()
                    c0, t0 = time.process_time(), time.perf_counter()  # after reading /proc
                    fn()
                    t1, c1 = time.perf_counter(), time.process_time()
                    samples[name].append(t1 - t0)
                    after = others()
                    cpu[name]["cloud"] += c1 - c0
                    for k in pids:
                        cpu[name][k] += after[k] - before[k]
            conn.close()
    result: dict[str, Any] = {name: summarize(values) for name, values in samples.items()}
    for name in calls:
        result[name]["cpu_per_call"] = {k: v / reps for k, v in cpu[name].items()}
    return result


def run(quick: bool = False) -> list[dict[str, Any]]:
    reps, warmup = (30, 5) if quick else (150, 10)
    result = measure(reps, warmup)
    subject, baseline = result["lambda"], result["direct"]
    p99 = {k: statistics.quantiles(v["samples"], n=100)[98] for k, v in result.items()}
    ms = {k: v["median"] * 1e3 for k, v in result.items()}
    note = (
        f"layers (medians): direct HTTP {ms['direct']:.2f} ms; sagemaker-runtime "
        f"InvokeEndpoint via the local cloud {ms['runtime']:.2f} ms; worker IPC + handler "
        f"(LambdaRuntime.invoke) {ms['worker']:.2f} ms; lambda.invoke via the local cloud "
        f"{ms['lambda']:.2f} ms; floor: boto3 invoke_endpoint to a trivial app on the same "
        f"HTTP server, no moto {ms['floor']:.2f} ms. p99: Lambda {p99['lambda'] * 1e3:.1f} ms, "
        f"direct {p99['direct'] * 1e3:.2f} ms. One row of 30 features, {reps} interleaved "
        f"calls after {warmup} warm-up rounds. CPU per call (cloud process = boto3 clients + "
        f"moto's server / Lambda worker / model server): "
        + "; ".join(
            f"{k} " + "/".join(f"{v * 1e3:.1f}" for v in result[k]["cpu_per_call"].values()) + " ms"
            for k in ("direct", "floor", "runtime", "lambda")
        )
    )
    row = figure(
        "4 inference Lambda",
        "warm Invoke of the inference Lambda (one row)",
        subject,
        "direct HTTP POST /invocations",
        baseline,
        "s",
        "≤ 3×",  # issue 17
        subject["median"] <= 3 * baseline["median"],
        note=note,
    )
    row.update(p99=p99["lambda"], baseline_p99=p99["direct"])
    return [row]


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv[1:]), indent=2))
