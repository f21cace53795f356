"""Figure 3 — serving: the container's model server (Granian, see
``container/sfn_container/serve.py``) against in-process predict (latency) and against
gunicorn + Flask serving the same model (throughput), measured side by side.

* Latency: one-row ``POST /invocations`` (text/csv) over a keep-alive loopback connection,
  p50 and p99 of many sequential requests, against ``Model.predict`` on the same row in
  this process (XGBoost ``inplace_predict``). Goal: p50 within +0.5 ms.
* Throughput: requests per second with concurrent clients. The load generator is this
  module run as separate processes (``python -m benchmarks.serving loadgen ...``): raw
  non-blocking sockets, one request in flight per connection, bounded in requests and
  time. The baseline is gunicorn + Flask (the stack of SageMaker's scikit-learn container)
  with the same worker count and the *same* model and codec, so only the HTTP stack
  differs; both gunicorn's ``sync`` (no keep-alive) and ``gthread`` (keep-alive) workers are
  measured and the faster one is the baseline. Goal: ≥ 1.5x.
* The same throughput with 200 idle keep-alive connections held open (each answered one
  ``/ping``, then silent), against gunicorn's ``gthread`` workers with the same 200 (its
  ``sync`` workers block on an idle connection). Goal: ≥ 1.5x.
* p99 latency of the same one-row requests, against gunicorn + Flask's p99.

The model: XGBoost trained by the container on the breast-cancer data set with the
pipeline's default hyperparameters (100 rounds, depth 4; 30 features).

``python -m benchmarks.serving [--quick]`` prints the rows as JSON.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import figure, summarize

REPO = Path(__file__).resolve().parents[1]
WORKERS = 2  # this machine's core count; the same for both servers
CLIENT_PROCESSES = 2
CONNECTIONS_PER_CLIENT = 8
IDLE_CONNECTIONS = 200

_FLASK_APP = """
import os
from pathlib import Path
from flask import Flask, Response, request
from sfn_container import codec
from sfn_container.model import load_model

model = load_model(Path(os.environ["MODEL_DIR"]), nthread=1)
decode = codec.Decoder(model.feature_names, model.categories)  # once, as serve.py does
app = Flask(__name__)


@app.get("/ping")
def ping():
    return Response(status=200)


@app.post("/invocations")
def invocations():
    kind = codec.media_type(request.content_type)
    try:
        accept = codec.response_type(request.headers.get("Accept"), kind)
        rows = decode(request.get_data(), kind)
        return Response(codec.encode(model.predict(rows), accept), mimetype=accept)
    except codec.RequestError as exc:
        return Response(exc.message, status=exc.status, mimetype="text/plain")
"""


# --- the load generator (runs in its own processes) ------------------------------------------


def _request_bytes(body: bytes) -> bytes:
    return (
        b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
        b"Accept: text/csv\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def _complete(buffer: bytearray) -> tuple[int, int, bool] | None:
    """(bytes consumed, status, server closes) of the first full response, or None."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).lower()
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line.startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if len(buffer) < end + 4 + length:
        return None
    return end + 4 + length, int(head[9:12]), b"connection: close" in head


def load_generator(port: int, body: bytes, connections: int, requests: int, seconds: float) -> dict:
    """Keep `connections` requests in flight until `requests` are answered or time is up."""
    request = _request_bytes(body)
    selector = selectors.DefaultSelector()
    buffers: dict[socket.socket, bytearray] = {}
    sent = done = errors = 0

    def open_and_send() -> None:
        nonlocal sent
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request)
        sent += 1
        buffers[sock] = bytearray()
        selector.register(sock, selectors.EVENT_READ)

    def drop(sock: socket.socket) -> None:
        selector.unregister(sock)
        buffers.pop(sock, None)
        sock.close()

    started = time.perf_counter()
    deadline = started + seconds
    for _ in range(min(connections, requests)):
        open_and_send()
    while buffers and time.perf_counter() < deadline:
        for key, _ in selector.select(timeout=1.0):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            chunk = sock.recv(65536)
            if not chunk:  # closed without an answer: count it and reconnect
                errors += 1
                drop(sock)
                if sent < requests:
                    open_and_send()
                continue
            buffer = buffers[sock]
            buffer += chunk
            answer = _complete(buffer)
            if answer is None:
                continue
            consumed, status, closes = answer
            del buffer[:consumed]
            done += 1
            errors += status != 200
            if closes:
                drop(sock)
                if sent < requests:
                    open_and_send()
            elif sent < requests:
                sock.sendall(request)
                sent += 1
            else:
                drop(sock)
    elapsed = time.perf_counter() - started
    for sock in list(buffers):
        drop(sock)
    return {"done": done, "errors": errors, "seconds": elapsed}


def _throughput(port: int, body: bytes, requests: int, seconds: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.serving", "loadgen", "--port", str(port)]
    args = ["--connections", str(CONNECTIONS_PER_CLIENT), "--requests", str(requests)]
    args += ["--seconds", str(seconds), "--body", body.decode()]
    clients = [
        subprocess.Popen([*command, *args], cwd=REPO, stdout=subprocess.PIPE, text=True)
        for _ in range(CLIENT_PROCESSES)
    ]
    results = [json.loads(c.communicate(timeout=seconds + 60)[0]) for c in clients]
    done = sum(r["done"] for r in results)
    return {
        "rps": sum(r["done"] / r["seconds"] for r in results),
        "done": done,
        "errors": sum(r["errors"] for r in results),
    }


def _idle_connections(port: int, n: int) -> list[socket.socket]:
    """`n` keep-alive connections that each had one /ping answered and then stay silent."""
    clients = []
    for _ in range(n):
        client = _Client(port)
        if client.call(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n") != 200:
            raise RuntimeError("an idle connection's /ping failed")
        clients.append(client.sock)
    return clients


# --- latency ----------------------------------------------------------------------------------


class _Client:
    """A lean keep-alive HTTP client: one socket, pre-built request bytes."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()

    def call(self, request: bytes) -> int:
        self.sock.sendall(request)
        while True:
            answer = _complete(self.buffer)
            if answer is not None:
                consumed, status, _ = answer
                del self.buffer[:consumed]
                return status
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def _latencies(fn: Any, n: int) -> np.ndarray:
    samples = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn()
        samples[i] = time.perf_counter() - t0
    return samples


def _stats_ms(samples: np.ndarray, reps: int) -> dict[str, Any]:
    """p50 of the whole run, with min-max of the p50 over `reps` equal slices."""
    slices = [float(np.median(s)) * 1e3 for s in np.array_split(samples, reps)]
    return {
        **summarize(slices),
        "median": float(np.median(samples)) * 1e3,
        "p99": float(np.percentile(samples, 99)) * 1e3,
    }


# --- servers ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO / 'container'}{os.pathsep}{REPO}", **extra}


def _wait_ready(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            client = _Client(port)
            status = client.call(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            client.close()
            if status == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server not ready within 60 s")


def _start_container_server(opt_ml: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    command = [sys.executable, "-m", "sfn_container", "serve", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--workers", str(WORKERS)],
        env=_env(OPT_ML=str(opt_ml)),
        stdout=subprocess.DEVNULL,
    )
    _wait_ready(process, port)
    return process, port


def _start_gunicorn(
    workdir: Path, model_dir: Path, worker_class: str
) -> tuple[subprocess.Popen[bytes], int]:
    (workdir / "flask_app.py").write_text(_FLASK_APP)
    port = _free_port()
    command = [str(Path(sys.executable).with_name("gunicorn")), "--chdir", str(workdir)]
    command += ["--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}", "--worker-class"]
    # keep-alive 30 s (gunicorn's default is 2 s): a client idle while the other servers are
    # measured keeps its connection, and the idle-connections row holds its 200 open
    command += [worker_class, "--log-level", "warning", "--keep-alive", "30"]
    if worker_class == "gthread":
        command += ["--threads", "4"]
    process = subprocess.Popen(
        [*command, "flask_app:app"], env=_env(MODEL_DIR=str(model_dir)), stdout=subprocess.DEVNULL
    )
    _wait_ready(process, port)
    return process, port


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _train_model(root: Path) -> Path:
    from sfn_container.data import write_dataset
    from sfn_container.paths import OptMl
    from sfn_container.preprocess import PreprocessConfig, preprocess
    from sfn_container.train import TrainConfig, train

    write_dataset("breast_cancer", root / "raw")
    preprocess(root / "raw", root / "splits", PreprocessConfig())
    opt_ml = OptMl(root / "opt_ml")
    for channel in ("train", "validation"):
        opt_ml.channel(channel).mkdir(parents=True)
        (root / "splits" / channel / f"{channel}.parquet").rename(
            opt_ml.channel(channel) / f"{channel}.parquet"
        )
    params = {"num_round": "100", "max_depth": "4", "eta": "0.2", "subsample": "0.9"}
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        train(opt_ml, TrainConfig.from_hyperparameters(params))
    return opt_ml.root


def run(quick: bool = False) -> list[dict[str, Any]]:
    from sfn_container import tabular
    from sfn_container.serve import load_serving_model

    latency_n = 1000 if quick else 5000
    rounds, requests, seconds = (2, 3000, 1.5) if quick else (5, 10000, 2.5)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        root = Path(tmp)
        opt_ml = _train_model(root)
        model = load_serving_model(opt_ml / "model")
        x = model.schema.matrix(tabular.read_dir(root / "splits" / "test"))
        row = x[:1].copy()
        body = (",".join(repr(float(v)) for v in row[0]) + "\n").encode()
        request = _request_bytes(body)

        servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        try:
            servers["ours"] = _start_container_server(opt_ml)
            for worker_class in ("sync", "gthread"):
                servers[worker_class] = _start_gunicorn(root, opt_ml / "model", worker_class)

            # latency: in-process, ours and gunicorn interleaved in slices (machines are noisy)
            clients = {name: _Client(servers[name][1]) for name in ("ours", "gthread")}
            calls = {
                "in_process": lambda: model.predict(row),
                "ours": lambda: clients["ours"].call(request),
                "gthread": lambda: clients["gthread"].call(request),
            }
            samples: dict[str, list[np.ndarray]] = {name: [] for name in calls}
            for call in calls.values():
                _latencies(call, 300)  # warm-up
            for _ in range(5):
                for name, call in calls.items():
                    samples[name].append(_latencies(call, latency_n // 5))
            for client in clients.values():
                client.close()
            latency = {name: _stats_ms(np.concatenate(s), 5) for name, s in samples.items()}

            # throughput: rounds alternate between the servers; medians over rounds
            rps: dict[str, list[float]] = {name: [] for name in servers}
            errors = dict.fromkeys(servers, 0)
            idle_rps: dict[str, list[float]] = {"ours": [], "gthread": []}
            idle_errors = dict.fromkeys(idle_rps, 0)
            for _ in range(rounds):
                for name, (_, port) in servers.items():
                    result = _throughput(port, body, requests, seconds)
                    rps[name].append(result["rps"])
                    errors[name] += result["errors"]
                for name, values in idle_rps.items():
                    port = servers[name][1]
                    idle = _idle_connections(port, IDLE_CONNECTIONS)
                    try:
                        result = _throughput(port, body, requests, seconds)
                    finally:
                        for sock in idle:
                            sock.close()
                    values.append(result["rps"])
                    idle_errors[name] += result["errors"]
        finally:
            for process, _ in servers.values():
                _stop(process)

    http, in_process, flask = latency["ours"], latency["in_process"], latency["gthread"]
    gap = http["median"] - in_process["median"]
    rows.append(
        figure(
            "serving_latency_p50",
            "POST /invocations, 1 row, keep-alive (sfn_container serve)",
            http,
            "in-process Model.predict (inplace_predict), same row",
            in_process,
            "ms",
            "p50 <= baseline + 0.5 ms",
            gap <= 0.5,
            note=(
                f"gap {gap:.3f} ms; p99 {http['p99']:.3f} ms vs in-process p99 "
                f"{in_process['p99']:.3f} ms; gunicorn+Flask (gthread) p50 "
                f"{flask['median']:.3f} ms, p99 {flask['p99']:.3f} ms"
            ),
        )
    )
    rows[-1].update(p99=http["p99"], baseline_p99=in_process["p99"])
    rows.append(
        figure(
            "serving_latency_p99",
            "POST /invocations, 1 row, keep-alive (sfn_container serve), p99",
            http["p99"],
            "gunicorn+Flask (gthread), same requests, p99",
            flask["p99"],
            "ms",
            "p99 <= baseline p99",
            http["p99"] <= flask["p99"],
            note=f"in-process predict p99 {in_process['p99']:.3f} ms; {latency_n} requests each",
        )
    )
    medians = {name: summarize(values) for name, values in rps.items()}
    best = max(("sync", "gthread"), key=lambda k: medians[k]["median"])
    ratio = medians["ours"]["median"] / medians[best]["median"]
    rows.append(
        figure(
            "serving_throughput",
            f"sfn_container serve, {WORKERS} workers",
            medians["ours"],
            f"gunicorn+Flask ({best} worker class, {WORKERS} workers), same model and codec",
            medians[best],
            "req/s",
            ">= 1.5x baseline",
            ratio >= 1.5 and errors["ours"] == 0,
            note=(
                f"{rounds} alternating rounds; {CLIENT_PROCESSES} load-generator processes x "
                f"{CONNECTIONS_PER_CLIENT} connections, <= {requests} requests or "
                f"{seconds:.1f} s each; non-200 answers: {errors}; gunicorn sync median "
                f"{medians['sync']['median']:.0f} req/s, gthread {medians['gthread']['median']:.0f}"
            ),
        )
    )
    idle = {name: summarize(values) for name, values in idle_rps.items()}
    idle_ratio = idle["ours"]["median"] / idle["gthread"]["median"]
    rows.append(
        figure(
            "serving_throughput_idle_connections",
            f"sfn_container serve, {WORKERS} workers, {IDLE_CONNECTIONS} idle connections open",
            idle["ours"],
            f"gunicorn+Flask (gthread, {WORKERS} workers), the same {IDLE_CONNECTIONS} idle",
            idle["gthread"],
            "req/s",
            ">= 1.5x baseline",
            idle_ratio >= 1.5 and idle_errors["ours"] == 0,
            note=(
                f"{IDLE_CONNECTIONS} keep-alive connections opened before each round (one /ping "
                f"each, then silent); without them: {medians['ours']['median']:.0f} req/s; "
                f"non-200 answers: {idle_errors}"
            ),
        )
    )
    return rows


def _main(argv: list[str]) -> None:
    if argv and argv[0] == "loadgen":
        import argparse

        parser = argparse.ArgumentParser()
        for name, kind in (
            ("port", int),
            ("connections", int),
            ("requests", int),
            ("seconds", float),
            ("body", str),
        ):
            parser.add_argument(f"--{name}", type=kind, required=True)
        a = parser.parse_args(argv[1:])
        result = load_generator(a.port, a.body.encode(), a.connections, a.requests, a.seconds)
        print(json.dumps(result))
        return
    print(json.dumps(run(quick="--quick" in argv), indent=2))


if __name__ == "__main__":
    _main(sys.argv[1:])
