"""The model server over real HTTP on loopback, serving a model trained by `train`."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sfn_container.model import Model

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
MAX_BODY = 200_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(
    opt_ml: Path, workers: int, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], int]:
    port = _free_port()
    env = {
        **os.environ,
        "OPT_ML": str(opt_ml),
        "SERVE_MAX_BODY_BYTES": str(MAX_BODY),
        "PYTHONPATH": f"{REPO / 'container'}{os.pathsep}{REPO}",
        **(extra_env or {}),
    }
    command = [sys.executable, "-m", "sfn_container", "serve", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # poll /ping with a bound
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            if _request(port, "GET", "/ping")[0] == 200:
                return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("the server did not answer /ping within 30 s")


def _request(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), response.getheader("Content-Type", "")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def server(served: dict) -> Iterator[int]:
    process, port = _start(served["opt_ml"], workers=2)
    yield port
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def _csv(rows: np.ndarray) -> bytes:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows).encode()


def test_ping(server: int) -> None:
    assert _request(server, "GET", "/ping")[0] == 200


def test_one_csv_row_equals_in_process_prediction(server: int, served: dict) -> None:
    model: Model = served["model"]
    row = served["x"][:1]
    status, body, kind = _request(
        server, "POST", "/invocations", _csv(row), {"Content-Type": "text/csv"}
    )
    assert status == 200
    assert kind == "text/csv"
    assert [float(v) for v in body.split()] == model.predict(row).astype(float).tolist()


def test_many_json_rows_equal_in_process_predictions(server: int, served: dict) -> None:
    model: Model = served["model"]
    x = served["x"]
    body = json.dumps({"instances": x.astype(float).tolist()}).encode()
    status, answer, kind = _request(
        server, "POST", "/invocations", body, {"Content-Type": "application/json"}
    )
    assert status == 200
    assert kind == "application/json"
    predictions = json.loads(answer)["predictions"]
    assert len(predictions) == len(x) > 50
    assert predictions == model.predict(x).astype(float).tolist()


def test_csv_with_header_answers_in_accept_type(server: int, served: dict) -> None:
    status, answer, kind = _request(
        server,
        "POST",
        "/invocations",
        served["sample"],
        {"Content-Type": "text/csv", "Accept": "application/json"},
    )
    assert status == 200
    assert kind == "application/json"
    predictions = json.loads(answer)["predictions"]
    assert len(predictions) == served["sample"].count(b"\n") - 1
    assert all(0 <= p <= 1 for p in predictions)


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "fragment"),
    [
        ("POST", "/invocations", b"1,2,3", {"Content-Type": "text/csv"}, 400, b"expects 30"),
        ("POST", "/invocations", b"[[1,", {"Content-Type": "application/json"}, 400, b"JSON"),
        ("POST", "/invocations", b"1", {"Content-Type": "text/plain"}, 415, b"content type"),
        (
            "POST",
            "/invocations",
            b"1",
            {"Content-Type": "text/csv", "Accept": "application/xml"},
            406,
            b"cannot answer",
        ),
        ("POST", "/invocations", b"1" * (MAX_BODY + 1), {"Content-Type": "text/csv"}, 413, b""),
        ("GET", "/invocations", b"", {}, 405, b"POST"),
        ("GET", "/nowhere", b"", {}, 404, b"no route"),
    ],
)
def test_error_statuses(
    server: int,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    fragment: bytes,
) -> None:
    got, answer, _ = _request(server, method, path, body, headers)
    assert got == status
    assert fragment in answer
    assert _request(server, "GET", "/ping")[0] == 200  # still serving


def _raw(port: int, payload: bytes, responses: int) -> bytes:
    """Send raw bytes on one connection; read until `responses` responses have arrived."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        data = b""
        while data.count(b"HTTP/1.1 ") < responses or not data.endswith((b"\n", b"\r\n\r\n")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_keep_alive_and_pipelined(server: int, served: dict) -> None:
    row = _csv(served["x"][:1])
    plain = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
        b"Content-Length: " + str(len(row)).encode() + b"\r\n\r\n" + row
    )
    data = _raw(server, plain + plain + b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n", 3)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    expected = repr(float(served["model"].predict(served["x"][:1])[0])).encode()
    assert data.count(expected + b"\n") == 2


def test_chunked_body_needs_a_content_length(server: int, served: dict) -> None:
    row = _csv(served["x"][:1])
    chunked = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + f"{len(row):x}\r\n".encode()
        + row
        + b"\r\n0\r\n\r\n"
    )
    data = _raw(server, chunked, 1)
    assert data.startswith(b"HTTP/1.1 411 ")
    assert b"Content-Length" in data


def test_malformed_request_line(server: int) -> None:
    data = _raw(server, b"NONSENSE\r\n\r\n", 1)
    assert data.startswith(b"HTTP/1.1 400 ")
    assert _request(server, "GET", "/ping")[0] == 200


def test_sigterm_stops_cleanly(served: dict) -> None:
    process, port = _start(served["opt_ml"], workers=1)
    assert _request(port, "GET", "/ping")[0] == 200
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
