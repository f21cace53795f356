"""Serve (SageMaker endpoint): a lean HTTP/1.1 model server.

Routes: ``GET /ping`` (200 once the model is loaded: the socket is only bound after
loading), ``POST /invocations`` (bodies: :mod:`sfn_container.codec`) and
``GET /execution-parameters`` (batch transform hints). Errors answer with a status and a
plain-text message: 400 malformed body or wrong feature count, 404/405 unknown route or
method, 406/413/415, 431 oversized headers, 500 for an unexpected error (logged; the
server keeps serving). Nothing a client sends can stop the server.

Settings (environment): ``SAGEMAKER_BIND_TO_PORT`` (8080), ``SAGEMAKER_MODEL_SERVER_WORKERS``
(processes; default the CPU count), ``SERVE_MAX_BODY_BYTES`` (6 MiB, SageMaker's payload
limit), the model from ``$OPT_ML/model`` (files or ``model.tar.gz``).

Why it is fast: one asyncio ``Protocol`` per connection (no streams, no framework),
keep-alive and pipelining, the request parsed straight from the receive buffer, rows turned
into one float32 matrix and predicted with XGBoost's ``inplace_predict`` (one thread per
worker: the workers are the parallelism). With more than one worker the parent binds the
socket, forks the workers (they inherit the loaded model) and supervises them: a worker
that dies is replaced, and SIGTERM/SIGINT stop every worker gracefully (the current
request is answered, idle connections are closed) before the parent exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path

from sfn_container import codec
from sfn_container.errors import ModelError
from sfn_container.model import Model, find_model_dir, load_model
from sfn_container.paths import OptMl

MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_BODY = 6 * 1024 * 1024
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    411: "Length Required",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
}


def _response(status: int, body: bytes, content_type: str, close: bool = False) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    )
    if close:
        head += "Connection: close\r\n"
    return head.encode("latin-1") + b"\r\n" + body


def _error(status: int, message: str, close: bool = False) -> bytes:
    return _response(status, (message + "\n").encode(), "text/plain; charset=utf-8", close)


_PING = _response(200, b"", "text/plain")


class _BadRequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class App:
    """Routes a parsed request to a response (plain function of its inputs; no I/O)."""

    def __init__(self, model: Model, workers: int = 1) -> None:
        self.model = model
        self.features = model.feature_names
        self.categories = model.categories
        self.params = json.dumps(
            {
                "MaxConcurrentTransforms": workers,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": 6,
            }
        ).encode()

    def handle(self, method: bytes, path: bytes, headers: dict[bytes, bytes], body: bytes) -> bytes:
        route = path.split(b"?", 1)[0]
        if route == b"/invocations":
            if method != b"POST":
                return _error(405, "use POST /invocations")
            return self.invocations(headers, body)
        if route == b"/ping":
            if method not in (b"GET", b"HEAD"):
                return _error(405, "use GET /ping")
            return _PING
        if route == b"/execution-parameters" and method == b"GET":
            return _response(200, self.params, codec.JSON)
        return _error(404, f"no route {route.decode('latin-1')!r}")

    def invocations(self, headers: dict[bytes, bytes], body: bytes) -> bytes:
        content_type = codec.media_type(headers.get(b"content-type", b"").decode("latin-1"))
        try:
            accept = headers.get(b"accept")
            kind = codec.response_type(accept.decode("latin-1") if accept else None, content_type)
            rows = codec.decode(body, content_type, self.features, self.categories)
            out = codec.encode(self.model.predict(rows), kind)
        except codec.RequestError as exc:
            return _error(exc.status, exc.message)
        return _response(200, out, kind)


class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 on one connection: keep-alive, pipelining, Content-Length or chunked bodies."""

    def __init__(self, app: App, max_body: int, connections: set[HttpProtocol]) -> None:
        self.app = app
        self.max_body = max_body
        self.connections = connections
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.busy = True
        try:
            while self.transport is not None and self.buffer:
                if not self._one_request():
                    break
        finally:
            self.busy = False

    def _one_request(self) -> bool:
        """Answer the first complete request in the buffer; False if it is incomplete."""
        transport = self.transport
        assert transport is not None
        try:
            parsed = self._parse()
        except _BadRequestError as exc:
            transport.write(_error(exc.status, str(exc), close=True))
            transport.close()
            self.buffer.clear()
            return False
        if parsed is None:
            return False
        method, path, version, headers, body = parsed
        try:
            response = self.app.handle(method, path, headers, body)
        except Exception as exc:  # never let one request take the worker down
            traceback.print_exc()
            response = _error(500, f"internal error ({type(exc).__name__})")
        connection = headers.get(b"connection", b"").lower()
        close = connection == b"close" or (version == b"HTTP/1.0" and connection != b"keep-alive")
        if close:
            transport.write(response)
            transport.close()
            return False
        if version == b"HTTP/1.0":  # keep-alive asked for explicitly: say yes
            response = response.replace(b"\r\n\r\n", b"\r\nConnection: keep-alive\r\n\r\n", 1)
        transport.write(response)
        return True

    def _parse(self) -> tuple[bytes, bytes, bytes, dict[bytes, bytes], bytes] | None:
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEADER_BYTES:
                raise _BadRequestError(431, "request headers too large")
            return None
        lines = bytes(buffer[:end]).split(b"\r\n")
        request_line = lines[0].split(b" ")
        if len(request_line) != 3 or not request_line[2].startswith(b"HTTP/1."):
            raise _BadRequestError(400, "malformed request line")
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise _BadRequestError(400, "malformed header line")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            decoded = self._chunked(start)
            if decoded is None:
                return None
            body, consumed = decoded
        else:
            try:
                length = int(headers.get(b"content-length", b"0"))
            except ValueError:
                raise _BadRequestError(400, "invalid Content-Length") from None
            if length < 0:
                raise _BadRequestError(400, "invalid Content-Length")
            if length > self.max_body:
                raise _BadRequestError(413, f"body larger than {self.max_body} bytes")
            if len(buffer) < start + length:
                return None
            body, consumed = bytes(buffer[start : start + length]), start + length
        del buffer[:consumed]
        return request_line[0], request_line[1], request_line[2], headers, body

    def _chunked(self, start: int) -> tuple[bytes, int] | None:
        buffer = self.buffer
        parts: list[bytes] = []
        pos, size_total = start, 0
        while True:
            line_end = buffer.find(b"\r\n", pos)
            if line_end < 0:
                return None
            try:
                size = int(bytes(buffer[pos:line_end]).split(b";", 1)[0], 16)
            except ValueError:
                raise _BadRequestError(400, "malformed chunk size") from None
            size_total += size
            if size_total > self.max_body:
                raise _BadRequestError(413, f"body larger than {self.max_body} bytes")
            if size == 0:
                trailer_end = buffer.find(b"\r\n\r\n", line_end)
                if buffer[line_end : line_end + 4] == b"\r\n\r\n":
                    return b"".join(parts), line_end + 4
                if trailer_end < 0:
                    return None
                return b"".join(parts), trailer_end + 4
            data_start = line_end + 2
            if len(buffer) < data_start + size + 2:
                return None
            parts.append(bytes(buffer[data_start : data_start + size]))
            pos = data_start + size + 2


def _settings(host: str | None, port: int | None, workers: int | None) -> tuple[str, int, int, int]:
    env = os.environ
    port = port if port is not None else int(env.get("SAGEMAKER_BIND_TO_PORT", "8080"))
    workers = workers or int(env.get("SAGEMAKER_MODEL_SERVER_WORKERS", "0") or 0)
    workers = workers or os.cpu_count() or 1
    max_body = int(env.get("SERVE_MAX_BODY_BYTES", str(DEFAULT_MAX_BODY)))
    return host or env.get("SERVE_HOST", "0.0.0.0"), port, workers, max_body


def load_serving_model(model_root: Path) -> Model:
    model_dir = find_model_dir(model_root, Path(tempfile.gettempdir()))
    if model_dir is None:
        raise ModelError(f"no model (model.ubj or model.tar.gz) in {model_root}")
    return load_model(model_dir, nthread=1)


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def serve_socket(sock: socket.socket, app: App, max_body: int) -> None:
    """Run one worker's event loop on a listening socket until SIGTERM/SIGINT."""

    async def run() -> None:
        loop = asyncio.get_running_loop()
        connections: set[HttpProtocol] = set()
        server = await loop.create_server(
            lambda: HttpProtocol(app, max_body, connections), sock=sock, backlog=1024
        )
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        server.close()
        for protocol in list(connections):  # requests are answered synchronously: every
            if protocol.transport is not None and not protocol.busy:  # connection is idle
                protocol.transport.close()
        await server.wait_closed()

    asyncio.run(run())


def _spawn(sock: socket.socket, app: App, max_body: int) -> int:
    pid = os.fork()
    if pid == 0:  # the worker
        code = 0
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            serve_socket(sock, app, max_body)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


class _StopRequestedError(Exception):
    """Raised by the supervisor's signal handler to leave its blocking wait."""


def _supervise(sock: socket.socket, app: App, max_body: int, workers: int) -> None:
    def on_signal(signum: int, frame: object) -> None:
        raise _StopRequestedError

    children: set[int] = set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        for _ in range(workers):
            children.add(_spawn(sock, app, max_body))
        while children:
            pid, status = os.waitpid(-1, 0)
            if pid in children:  # a worker died: replace it
                children.discard(pid)
                print(f"worker {pid} exited ({status}); starting a new one", flush=True)
                children.add(_spawn(sock, app, max_body))
    except _StopRequestedError:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _stop_workers(children)


def _stop_workers(children: set[int], timeout: float = 20.0) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while children and time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            children.discard(pid)
        else:
            time.sleep(0.02)
    for pid in children:  # did not stop in time
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def main(host: str | None = None, port: int | None = None, workers: int | None = None) -> int:
    host, port, workers, max_body = _settings(host, port, workers)
    try:
        model = load_serving_model(OptMl.from_env().model_dir)
    except ModelError as exc:
        print(f"ERROR {exc}", file=sys.stderr, flush=True)
        return 1
    app = App(model, workers)
    sock = _listen(host, port)
    print(
        f"serving {model.problem_type} model ({model.num_features} features) on "
        f"http://{host}:{sock.getsockname()[1]} with {workers} worker(s)",
        flush=True,
    )
    if workers == 1:
        serve_socket(sock, app, max_body)
    else:
        _supervise(sock, app, max_body, workers)
    sock.close()
    print("server stopped", flush=True)
    return 0
