"""The model server against hostile or broken clients, on loopback.

Every probe from issue 15 (a chunk size of -6, unterminated chunk lines, slowloris, stalled
bodies, duplicate or malformed Content-Length, Transfer-Encoding variants, a 70 KB header in
one read, 12,000 header fields, a NUL in a header value, JSON nested 100,000 levels) gets
the right status, the server stays up and other clients are still answered; a
property-based fuzz of request framing; SIGTERM drains; a worker stuck on a request past
SAGEMAKER_MODEL_SERVER_TIMEOUT is replaced. Timeouts are lowered through the environment so
that each wait is short; every loop is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_model_server import _csv, _free_port, _request

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SIX_MIB = 6 * 1024 * 1024
FAST_TIMEOUTS = {"SERVE_HEADER_TIMEOUT": "1", "SERVE_READ_TIMEOUT": "1"}
HANG_VALUE = 1234.5  # sitecustomize below makes a row starting with this hang its worker
_SITECUSTOMIZE = f"""
from sfn_container import model as _model

_predict = _model.Model.predict


def _maybe_hang(self, x):
    if x.size and float(x.flat[0]) == {HANG_VALUE}:
        while True:  # a model stuck in Python code, holding the event loop
            pass
    return _predict(self, x)


_model.Model.predict = _maybe_hang
"""


class Server:
    def __init__(self, opt_ml: Path, log: Path, workers: int, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.log = log
        self.count = workers
        self.initial_workers: set[int] = set()
        paths = [*env.pop("EXTRA_PATH", "").split(), str(REPO / "container"), str(REPO)]
        full_env = {
            **os.environ,
            "OPT_ML": str(opt_ml),
            "PYTHONPATH": os.pathsep.join(paths),
            **env,
        }
        command = [sys.executable, "-m", "sfn_container", "serve", "--host", "127.0.0.1"]
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port), "--workers", str(workers)],
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.wait_ready()

    def wait_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                up = _request(self.port, "GET", "/ping")[0] == 200
                if up and len(self.workers()) == self.count:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"no /ping 200 within {seconds} s:\n{self.log.read_text()}")

    def workers(self) -> set[int]:
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return {int(c) for c in children}

    def rss_bytes(self) -> int:
        total = 0
        for pid in {self.process.pid, *self.workers()}:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        return total

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


@pytest.fixture(scope="module")
def hardened(served: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("hardened") / "server.log"
    server = Server(served["opt_ml"], log, workers=2, env=dict(FAST_TIMEOUTS))
    server.initial_workers = server.workers()
    yield server
    server.stop()


def _exchange(port: int, payload: bytes, timeout: float = 10.0) -> tuple[bytes, bool]:
    """Send `payload`; read until the server closes (or `timeout`). (data, closed by server)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(payload)  # the server may answer and close before taking it all
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return data, True
            except TimeoutError:
                return data, False
            if not chunk:
                return data, True
            data += chunk
        return data, False


def _still_serving(port: int, row: bytes) -> None:
    assert _request(port, "GET", "/ping")[0] == 200
    status, body, _ = _request(port, "POST", "/invocations", row, {"Content-Type": "text/csv"})
    assert status == 200, body


HEAD = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
JSON_HEAD = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
DEEP = b"[" * 100_000 + b"]" * 100_000
PROBES = {
    "chunk size -6": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n-6\r\nabcdef\r\n", 411),
    "unterminated chunk size line": (
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"1" * 100_000,
        411,
    ),
    "unterminated chunk extension": (
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n5;" + b"x" * 100_000,
        411,
    ),
    "two different Content-Lengths": (
        HEAD + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n12",
        400,
    ),
    "Content-Length +0_1": (HEAD + b"Content-Length: +0_1\r\n\r\n", 400),
    "Content-Length -1": (HEAD + b"Content-Length: -1\r\n\r\n", 400),
    "Content-Length 1,2": (HEAD + b"Content-Length: 1, 2\r\n\r\n12", 400),
    "Transfer-Encoding gzip, chunked": (
        HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        411,
    ),
    "Transfer-Encoding chunked, gzip": (
        HEAD + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        400,
    ),
    "Transfer-Encoding xchunked": (HEAD + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
    "Transfer-Encoding and Content-Length": (
        HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        411,
    ),
    "a 70 KB header in one read": (HEAD + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
    "12,000 header fields": (
        HEAD + b"".join(b"X-%d: v\r\n" % i for i in range(12_000)) + b"\r\n",
        431,
    ),
    "NUL in a header value": (HEAD + b"X-A: a\x00b\r\nContent-Length: 0\r\n\r\n", 400),
    "malformed request line": (b"NONSENSE\r\n\r\n", 400),
    "body over 6 MiB (declared)": (HEAD + f"Content-Length: {SIX_MIB + 1}\r\n\r\n".encode(), 413),
    "JSON nested 100,000 levels": (
        JSON_HEAD + f"Content-Length: {len(DEEP)}\r\n\r\n".encode() + DEEP,
        400,
    ),
    "stalled body (read timeout)": (HEAD + b"Content-Length: 1000\r\n\r\n0.5,", 408),
}


@pytest.mark.parametrize("name", list(PROBES))
def test_probe_gets_its_status_and_the_server_stays_up(
    hardened: Server, served: dict, name: str
) -> None:
    payload, status = PROBES[name]
    workers = hardened.workers()
    data, closed = _exchange(hardened.port, payload)
    assert data.startswith(f"HTTP/1.1 {status} ".encode()), data[:200]
    if status in (400, 408, 411, 413, 431) and name != "JSON nested 100,000 levels":
        assert closed, "after a framing or limit error the connection is closed"
    _still_serving(hardened.port, _csv(served["x"][:1]))
    assert hardened.workers() == workers, "no worker died"


def test_slowloris_connections_are_closed_and_others_answered(
    hardened: Server, served: dict
) -> None:
    # Given 200 connections that send half a request head and stall
    sockets = [
        socket.create_connection(("127.0.0.1", hardened.port), timeout=10) for _ in range(200)
    ]
    try:
        for sock in sockets:
            sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        # Then other clients are still answered
        _still_serving(hardened.port, _csv(served["x"][:1]))
        # And every stalled connection is closed by the server (header timeout: 1 s)
        for sock in sockets:
            assert sock.recv(1024) == b"", "closed without an answer"
    finally:
        for sock in sockets:
            sock.close()


def test_idle_keep_alive_connection_is_closed(hardened: Server) -> None:
    data, closed = _exchange(hardened.port, b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert closed, "an idle keep-alive connection is closed after SERVE_HEADER_TIMEOUT"


def _stall_bodies(port: int, connections: int) -> None:
    """`connections` clients each send just under 6 MiB of a 6 MiB body and stall; each
    must get 408 once SERVE_READ_TIMEOUT has passed."""
    head = HEAD + f"Content-Length: {SIX_MIB}\r\n\r\n".encode()
    chunk = b"0" * (SIX_MIB - 1024)
    address = ("127.0.0.1", port)
    sockets = [socket.create_connection(address, timeout=30) for _ in range(connections)]
    try:
        for sock in sockets:
            sock.sendall(head + chunk)
        for sock in sockets:
            data = b""
            while b"\r\n" not in data:
                part = sock.recv(4096)
                if not part:
                    break
                data += part
            assert data.startswith(b"HTTP/1.1 408 "), data[:100]
    finally:
        for sock in sockets:
            sock.close()


def test_stalled_bodies_are_timed_out_and_memory_stays_bounded(
    served: dict, tmp_path: Path
) -> None:
    # its own server: a read timeout long enough to send 30 near-6 MiB bodies on a busy machine
    env = {"SERVE_HEADER_TIMEOUT": "10", "SERVE_READ_TIMEOUT": "8"}
    server = Server(served["opt_ml"], tmp_path / "server.log", workers=2, env=env)
    try:
        # Given rounds of 30 stalled near-6 MiB bodies (each buffered until its 408)
        peaks = []
        for _ in range(4):
            _stall_bodies(server.port, 30)
            peaks.append(server.rss_bytes())
        # Then the memory of earlier rounds is reused, not kept per connection (a leak would
        # add about 180 MiB a round). The allocator may still take some in the first rounds
        # (once in a full `make test`, round 3 stood above the 60 MiB margin over rounds
        # 1-2): the last round is compared with the rounds before it.
        assert peaks[3] - max(peaks[:3]) < 60 * 1024 * 1024, peaks
        _still_serving(server.port, _csv(served["x"][:1]))
    finally:
        server.stop()


_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
_HEADER = st.tuples(
    st.one_of(_TOKEN, st.binary(max_size=20).map(lambda b: b.decode("latin-1"))),
    st.one_of(
        st.text(max_size=30).map(lambda t: t.encode("utf-8").decode("latin-1")),
        st.sampled_from(["chunked", "gzip, chunked", "0", "-1", "+5", "1, 1", "5 5", "0x10"]),
    ),
)
_REQUEST = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["GET", "POST", "PUT", "HEAD", "\x00", "P OST", ""]),
        "path": st.sampled_from(["/invocations", "/ping", "/", "*", "/%00", "//x?y=1"]),
        "version": st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1x", ""]),
        "headers": st.lists(
            st.tuples(
                st.sampled_from(["content-length", "transfer-encoding"]),
                _HEADER.map(lambda h: h[1]),
            )
            | _HEADER,
            max_size=8,
        ),
        "separator": st.sampled_from(["\r\n", "\n", "\r"]),
        "body": st.binary(max_size=300),
        "cut": st.integers(min_value=0, max_value=400),
    }
)


def _render(request: dict) -> bytes:
    sep = request["separator"]
    lines = [f"{request['method']} {request['path']} {request['version']}"]
    lines += [f"{name}: {value}" for name, value in request["headers"]]
    raw = (sep.join(lines) + sep + sep).encode("latin-1") + request["body"]
    return raw[: max(request["cut"], len(raw) // 2)] if request["cut"] < len(raw) else raw


_STATUSES = {200, 400, 404, 405, 406, 408, 411, 413, 415, 431, 501, 505}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=_REQUEST)
def test_fuzzed_framing_never_hangs_or_kills_the_server(hardened: Server, request: dict) -> None:
    payload = _render(request)
    with socket.create_connection(("127.0.0.1", hardened.port), timeout=10) as sock:
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)  # the client is done: the server must answer or close
        except OSError:
            pass
        data = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            except TimeoutError:
                pytest.fail(f"no answer and no close within 10 s for {payload[:200]!r}")
            if not chunk:
                break
            data += chunk
        else:
            pytest.fail(f"the server kept talking for 10 s to {payload[:200]!r}")
    for line in data.split(b"\r\n"):
        if line.startswith(b"HTTP/1.1 "):
            assert int(line[9:12]) in _STATUSES, data[:200]
    assert hardened.process.poll() is None


def test_fuzz_left_the_workers_and_memory_alone(hardened: Server, served: dict) -> None:
    """After the fuzz (same module server): same workers, bounded memory, still serving."""
    assert hardened.workers() == hardened.initial_workers, "no worker died in this module"
    before = hardened.rss_bytes()
    for _ in range(200):
        _exchange(hardened.port, HEAD + b"Connection: close\r\nContent-Length: 3\r\n\r\n1,2")
    _still_serving(hardened.port, _csv(served["x"][:1]))
    assert hardened.workers() == hardened.initial_workers
    assert hardened.rss_bytes() - before < 50 * 1024 * 1024


def test_sigterm_drains_the_request_in_progress_and_exits(served: dict, tmp_path: Path) -> None:
    server = Server(served["opt_ml"], tmp_path / "server.log", workers=2, env={})
    try:
        row = _csv(served["x"][:1])
        # Given a request whose body is half sent (on a connection a worker has accepted:
        # it answered a ping first), and an idle keep-alive connection
        ping = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"
        busy = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        busy.sendall(ping)
        assert busy.recv(4096).startswith(b"HTTP/1.1 200 ")
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        idle.sendall(ping)
        assert idle.recv(4096).startswith(b"HTTP/1.1 200 ")
        busy.sendall(HEAD + f"Content-Length: {len(row)}\r\n\r\n".encode() + row[:5])
        # When SageMaker stops the container
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        busy.sendall(row[5:])
        # Then the request in progress is answered
        answer = b""
        while b"\r\n\r\n" not in answer:
            part = busy.recv(4096)
            assert part, "the request in progress was dropped"
            answer += part
        assert answer.startswith(b"HTTP/1.1 200 ")
        # And the server exits 0 well inside SageMaker's 30 s before SIGKILL
        assert server.process.wait(timeout=30) == 0
        assert time.monotonic() - started < 25
        assert idle.recv(4096) == b""  # the idle connection was closed
        busy.close()
        idle.close()
    finally:
        server.stop()


def test_a_worker_stuck_past_the_timeout_is_replaced(served: dict, tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    server = Server(
        served["opt_ml"],
        tmp_path / "server.log",
        workers=1,
        env={"EXTRA_PATH": str(hooks), "SAGEMAKER_MODEL_SERVER_TIMEOUT": "2"},
    )
    try:
        (stuck_worker,) = server.workers()
        row = served["x"][:1].copy()
        row[0, 0] = HANG_VALUE
        # When a request makes the model loop forever
        data, closed = _exchange(
            server.port, HEAD + f"Content-Length: {len(_csv(row))}\r\n\r\n".encode() + _csv(row), 30
        )
        # Then the worker is ended after the timeout (the client sees the connection drop)
        assert closed
        assert data == b""
        # And a new worker serves
        server.wait_ready(30)
        assert server.workers() != {stuck_worker}
        _still_serving(server.port, _csv(served["x"][:1]))
        assert "SAGEMAKER_MODEL_SERVER_TIMEOUT=2" in server.log.read_text()
    finally:
        server.stop()
