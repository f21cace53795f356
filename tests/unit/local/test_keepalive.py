"""keepalive.py: moto's werkzeug server keeps a connection only when that is safe (the body
was read, not chunked, the client did not ask to close, the app did not fail), and closes
the kept ones when it stops. The server runs on loopback with small WSGI apps, and once
with moto's own app through boto3."""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sfn_mlops.local import keepalive
from sfn_mlops.local.cloud import _Patches

App = Callable[[dict[str, Any], Any], Any]


def _reads_body(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def _ignores_body(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def _fails_midway(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Length", "10")])
    yield b"12345"
    raise RuntimeError("the app failed after the headers")


@pytest.fixture
def serve() -> Iterator[Callable[[App], Any]]:
    patches = _Patches()
    keepalive.patch_werkzeug(patches)
    servers: list[Any] = []

    def start(app: App) -> Any:
        server = keepalive.make_server("127.0.0.1", 0, app)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
        server.close_connections()
    patches.undo()


def _post(conn: http.client.HTTPConnection, body: bytes, **headers: str) -> tuple[bytes, Any]:
    conn.request("POST", "/x", body=body, headers=headers)
    resp = conn.getresponse()
    return resp.read(), resp


def test_a_connection_serves_many_requests_when_the_body_was_read(serve: Any) -> None:
    server = serve(_reads_body)
    conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)

    answers = []
    for i in range(3):
        data, resp = _post(conn, f"body {i}".encode())
        answers.append(data)
        assert resp.getheader("Connection") is None
        if i == 0:
            sock = conn.sock
    assert answers == [b"body 0", b"body 1", b"body 2"]
    assert conn.sock is sock  # the same connection throughout
    conn.close()


@pytest.mark.parametrize(
    ("app", "headers", "body"),
    [
        (_ignores_body, {}, b"left unread"),
        (_reads_body, {"Connection": "close"}, b"x"),
        (_reads_body, {"Transfer-Encoding": "chunked"}, b"x"),
        (_fails_midway, {}, b"x"),
    ],
    ids=["body-unread", "client-asks-close", "chunked", "app-fails-after-headers"],
)
def test_the_connection_closes_when_keeping_it_is_not_safe(
    serve: Any, app: App, headers: dict[str, str], body: bytes
) -> None:
    server = serve(app)
    conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
    if headers.get("Transfer-Encoding") == "chunked":
        conn.request("POST", "/x", body=iter([body]), headers=headers)
    else:
        conn.request("POST", "/x", body=body, headers=headers)
    resp = conn.getresponse()
    # the failing app's response is cut short: the connection must end with it
    with contextlib.suppress(http.client.IncompleteRead):
        resp.read()
    if app is not _fails_midway:  # there the headers went out before the failure
        assert resp.will_close
    assert _closed_by_server(server)
    conn.close()


def _closed_by_server(server: Any, timeout: float = 5.0) -> bool:
    """The server ended every connection (polled, bounded)."""
    deadline = time.monotonic() + timeout
    while server.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    return not server.connections


def test_stopping_closes_the_kept_connections(serve: Any) -> None:
    server = serve(_reads_body)
    conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
    _post(conn, b"x")
    assert conn.sock is not None
    assert len(server.connections) == 1

    server.shutdown()
    server.close_connections()

    assert conn.sock.recv(1) == b""  # EOF: nothing reaches a stopped server
    conn.close()


def test_boto3_calls_through_moto_share_one_connection() -> None:
    import boto3

    patches = _Patches()
    keepalive.patch_werkzeug(patches)
    moto = keepalive.KeepAliveMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        port = moto.get_host_and_port()[1]
        sts = boto3.session.Session().client(
            "sts",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        accounts = {sts.get_caller_identity()["Account"] for _ in range(3)}
        assert len(accounts) == 1
        assert len(moto._server.connections) == 1  # type: ignore[union-attr]
    finally:
        moto.stop()
        patches.undo()
