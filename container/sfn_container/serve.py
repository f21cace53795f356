"""Serve (SageMaker endpoint): the model behind Granian, a Rust HTTP server (hyper's parser).

Routes: ``GET /ping`` (200 once the model is loaded: the socket is only bound after
loading), ``POST /invocations`` (bodies: :mod:`sfn_container.codec`) and
``GET /execution-parameters`` (batch transform hints). Errors answer with a status and a
plain-text message: 400 malformed body, wrong feature count or JSON nested too deeply,
404/405 unknown route or method, 406/408/413/415, 500 for an unexpected error (logged; the
worker keeps serving). HTTP framing is hyper's: malformed framing (a bad or conflicting
Content-Length, an unknown Transfer-Encoding, control characters in a header) is a 400 and
the connection is closed; a request head over 64 KiB or with more than 100 fields is a 431.
A body must come with a Content-Length: a chunked one gets 411 (see :meth:`Service._body`).

Why Granian (measured with ``benchmarks/serving.py``'s load generator, 2 workers each, on
a loaded 2-core machine): with the same model and codec, Granian's RSGI interface answered
about 2x the requests per second of uvicorn + httptools + uvloop with a bare ASGI app (p50
latency about 0.15 ms higher), and it enforces the header limits and the header read
timeout itself; uvicorn + httptools has neither a header size or count limit nor a header
timeout. Granian's main process gives up (exits 1) when a worker dies twice within 5.5 s;
the platform restarts the container then (the local cloud's endpoint watcher does).

Settings (environment, SageMaker's names first):

* ``SAGEMAKER_BIND_TO_PORT`` (8080); ``SERVE_HOST`` (0.0.0.0).
* ``SAGEMAKER_MODEL_SERVER_WORKERS``: worker processes (default: the CPU count).
* ``SAGEMAKER_MODEL_SERVER_TIMEOUT``: seconds one request may take (60, InvokeEndpoint's
  limit). A worker busy on one request longer than that is stuck: it is killed and
  replaced (its watchdog thread ends the process; Granian starts a new worker).
* ``SERVE_MAX_BODY_BYTES`` (6 MiB, InvokeEndpoint's payload limit): larger bodies get 413,
  a declared Content-Length before any byte of the body is read.
* ``SERVE_HEADER_TIMEOUT`` (10 s): to send a request head, also the keep-alive idle time.
* ``SERVE_READ_TIMEOUT`` (30 s): to send the body once the head is in (408 after it).
* ``SERVE_MAX_CONNECTIONS`` (per worker, 256): requests in progress at once; further
  connections wait in the listen backlog (1024) until one finishes.
* ``SERVE_GRACEFUL_TIMEOUT`` (20 s): on SIGTERM, workers stop accepting, finish the requests
  in progress and exit; one still busy after this is killed (SageMaker sends SIGKILL 30 s
  after SIGTERM).

The model: ``$OPT_ML/model`` (files or ``model.tar.gz``), loaded once in the main process,
before binding; the workers are forked from it and inherit it. Each worker predicts with
one XGBoost thread (the workers are the parallelism).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from granian.rsgi import ProtocolClosed, ProtocolError

from sfn_container import codec
from sfn_container.errors import ModelError
from sfn_container.model import Model, find_model_dir, load_model
from sfn_container.paths import OptMl

DEFAULT_MAX_BODY = 6 * 1024 * 1024
#: hyper's read buffer: the request line and headers must fit (431 when they do not)
MAX_HEAD_BYTES = 64 * 1024
SMALL_BODY = 64 * 1024
_TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Limits:
    max_body: int = DEFAULT_MAX_BODY
    request_timeout: float = 60.0
    header_timeout: float = 10.0
    read_timeout: float = 30.0
    max_connections: int = 256
    graceful_timeout: float = 20.0

    @classmethod
    def from_env(cls) -> Limits:
        env = os.environ

        def number(name: str, default: float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ModelError(f"{name}={raw!r} is not a number") from None
            if value <= 0:
                raise ModelError(f"{name}={raw!r} must be positive")
            return value

        return cls(
            max_body=int(number("SERVE_MAX_BODY_BYTES", DEFAULT_MAX_BODY)),
            request_timeout=number("SAGEMAKER_MODEL_SERVER_TIMEOUT", 60.0),
            header_timeout=number("SERVE_HEADER_TIMEOUT", 10.0),
            read_timeout=number("SERVE_READ_TIMEOUT", 30.0),
            max_connections=int(number("SERVE_MAX_CONNECTIONS", 256)),
            graceful_timeout=number("SERVE_GRACEFUL_TIMEOUT", 20.0),
        )


class App:
    """Routes a request to ``(status, content type, body)``: a plain function, no I/O."""

    def __init__(self, model: Model, workers: int = 1) -> None:
        self.model = model
        self.features = model.feature_names
        self.categories = model.categories
        self.decode = codec.Decoder(self.features, self.categories)  # built once, not per request
        self.params = json.dumps(
            {
                "MaxConcurrentTransforms": workers,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": 6,
            }
        ).encode()

    def invocations(
        self, content_type: str | None, accept: str | None, body: bytes
    ) -> tuple[int, str, bytes]:
        kind = codec.media_type(content_type)
        try:
            answer = codec.response_type(accept, kind)
            rows = self.decode(body, kind)
            return 200, answer, codec.encode(self.model.predict(rows), answer)
        except codec.RequestError as exc:
            return exc.status, _TEXT, (exc.message + "\n").encode()
        except RecursionError:  # json.loads on a document nested thousands of levels deep
            return 400, _TEXT, b"the body is nested too deeply\n"


class _Watchdog:
    """Ends this worker when one request has run longer than the timeout.

    A request stuck in Python code (or in a native call) keeps the event loop from running,
    so the worker can neither answer nor stop on SIGTERM. This thread still gets the GIL
    (CPython hands it over every 5 ms) and exits the process; Granian's main process sees
    the worker die and starts a new one (as gunicorn's arbiter does for a silent worker).
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.started: dict[int, float] = {}
        self._next = 0
        self._thread: threading.Thread | None = None

    def begin(self) -> int:
        self._next += 1
        self.started[self._next] = time.monotonic()
        return self._next

    def end(self, token: int) -> None:
        self.started.pop(token, None)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="request-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        interval = min(1.0, self.timeout / 4)
        while True:
            time.sleep(interval)
            started = list(self.started.values())
            if started and time.monotonic() - min(started) > self.timeout:
                print(
                    f"worker {os.getpid()}: a request has run longer than "
                    f"SAGEMAKER_MODEL_SERVER_TIMEOUT={self.timeout:g} s; "
                    "ending this worker so that a new one replaces it",
                    file=sys.stderr,
                    flush=True,
                )
                os._exit(70)


class _BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Service:
    """The RSGI application: one per worker."""

    def __init__(self, app: App, limits: Limits) -> None:
        self.app = app
        self.limits = limits
        self.watchdog = _Watchdog(limits.request_timeout)

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.watchdog.start()

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        path = scope.path
        method = scope.method
        if _head_size(scope) > MAX_HEAD_BYTES:
            _text(protocol, 431, f"the request head is larger than {MAX_HEAD_BYTES} bytes", True)
        elif path == "/invocations":
            if method != "POST":
                _text(protocol, 405, "use POST /invocations")
                return
            token = self.watchdog.begin()
            try:
                await self._invocations(scope, protocol)
            finally:
                self.watchdog.end(token)
        elif path == "/ping":
            if method in ("GET", "HEAD"):
                protocol.response_empty(200, [("content-type", "text/plain")])
            else:
                _text(protocol, 405, "use GET /ping")
        elif path == "/execution-parameters" and method == "GET":
            protocol.response_bytes(200, [("content-type", codec.JSON)], self.app.params)
        else:
            _text(protocol, 404, f"no route {path!r}")

    async def _invocations(self, scope: Any, protocol: Any) -> None:
        headers = scope.headers
        try:
            async with asyncio.timeout(self.limits.read_timeout):  # no extra task per request
                body = await self._body(scope, protocol)
        except _BodyError as exc:
            _text(protocol, exc.status, str(exc), close=True)
            return
        except TimeoutError:
            _text(protocol, 408, f"the body took longer than {self.limits.read_timeout:g} s", True)
            return
        try:
            status, kind, out = self.app.invocations(
                headers.get("content-type"), headers.get("accept"), body
            )
        except Exception as exc:  # one bad request must not take the worker down
            traceback.print_exc()
            _text(protocol, 500, f"internal error ({type(exc).__name__})")
            return
        protocol.response_bytes(status, [("content-type", kind)], out)

    async def _body(self, scope: Any, protocol: Any) -> bytes:
        """The whole body, declared by Content-Length (hyper has validated the number).

        Chunked bodies are refused with 411 (RFC 9110 allows it; SageMaker's front end
        always sends Content-Length): Granian's body iterator ends silently on a malformed
        chunk, so a cut chunked body could not be told from a complete one. With a declared
        length, a body that ends early is one whose byte count falls short.
        """
        headers = scope.headers
        if "transfer-encoding" in headers:
            raise _BodyError(411, "send the body with a Content-Length (chunked is not accepted)")
        declared = int(headers.get("content-length") or 0)
        if declared > self.limits.max_body:
            raise _BodyError(413, f"the body is larger than {self.limits.max_body} bytes")
        if not declared:
            return b""
        if declared <= SMALL_BODY:  # one await (most requests): Granian raises if it breaks
            try:
                return bytes(await protocol())
            except (ProtocolClosed, ProtocolError):
                raise _BodyError(400, "the body ended before its Content-Length") from None
        body = bytearray()  # larger: streamed, so a cancelled read leaves nothing buffered
        async for chunk in protocol:
            body += chunk
        if len(body) != declared:
            raise _BodyError(400, f"the body ended after {len(body)} of {declared} bytes")
        return bytes(body)


def _head_size(scope: Any) -> int:
    """Bytes of the request line and header fields (hyper checks this only per read)."""
    size = len(scope.method) + len(scope.path) + len(scope.query_string) + 12
    for name, value in scope.headers.items():
        size += len(name) + len(value) + 4
    return size


def _text(protocol: Any, status: int, message: str, close: bool = False) -> None:
    headers = [("content-type", _TEXT)]
    if close:  # the rest of the body is not read: the connection cannot be reused
        headers.append(("connection", "close"))
    protocol.response_bytes(status, headers, (message + "\n").encode())


def load_serving_model(model_root: Path) -> Model:
    model_dir = find_model_dir(model_root, Path(tempfile.gettempdir()))
    if model_dir is None:
        raise ModelError(f"no model (model.ubj or model.tar.gz) in {model_root}")
    return load_model(model_dir, nthread=1)


_LOADED: dict[str, Any] = {}  # the main process's model and settings, inherited by forked workers


def _load_service(_target: str) -> Service:
    """Granian's target loader, called in each worker."""
    if "model" not in _LOADED:  # a worker started without fork (spawn): load it here
        _LOADED["model"] = load_serving_model(OptMl.from_env().model_dir)
        _LOADED["workers"] = 1
    return Service(App(_LOADED["model"], _LOADED["workers"]), Limits.from_env())


def _warm_up(model: Model, workers: int) -> None:
    """One request's work (decode, predict, encode) in the main process, before the workers
    fork: what a first request paid in each worker (XGBoost's first prediction, the JSON
    encoder's set-up, lazy imports; ~8-14 ms in-process, 30-70 ms through a fresh server on
    a loaded 2-core machine, against ~1 ms after) is then done once, inherited by every
    worker. It starts no thread (one XGBoost thread; checked: the thread count is
    unchanged), so forking after it stays safe. A failure here is left to the requests."""
    categorical = model.categories
    row = ",".join("" if name in categorical else "0" for name in model.feature_names)
    try:
        App(model, workers).invocations("text/csv", "text/csv", row.encode())
    except Exception:  # warm-up only: a real request reports it
        return


def main(host: str | None = None, port: int | None = None, workers: int | None = None) -> int:
    env = os.environ
    host = host or env.get("SERVE_HOST", "0.0.0.0")
    port = port if port is not None else int(env.get("SAGEMAKER_BIND_TO_PORT", "8080"))
    workers = workers or int(env.get("SAGEMAKER_MODEL_SERVER_WORKERS", "0") or 0)
    workers = workers or os.cpu_count() or 1
    try:
        limits = Limits.from_env()
        model = load_serving_model(OptMl.from_env().model_dir)
    except ModelError as exc:
        print(f"ERROR {exc}", file=sys.stderr, flush=True)
        return 1
    _LOADED.update(model=model, workers=workers)
    _warm_up(model, workers)

    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import Server

    server = Server(
        "sfn_container.serve:service",
        address=host,
        port=port,
        interface=Interfaces.RSGI,
        workers=workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        websockets=False,
        backlog=1024,
        backpressure=limits.max_connections,
        http1_settings=HTTP1Settings(
            header_read_timeout=max(1, int(limits.header_timeout * 1000)),
            keep_alive=True,
            max_buffer_size=MAX_HEAD_BYTES,
        ),
        log_level=LogLevels.warning,
        respawn_failed_workers=True,
        respawn_interval=0.0,
        workers_kill_timeout=max(1, round(limits.graceful_timeout)),
    )
    print(
        f"serving {model.problem_type} model ({model.num_features} features) on "
        f"http://{host}:{port} with {workers} worker(s) (granian)",
        flush=True,
    )
    code = 0
    try:
        server.serve(target_loader=_load_service)
    except SystemExit as exc:  # Granian exits 1 when a worker crash-looped
        code = int(exc.code or 0)
    print(f"server stopped ({code})", flush=True)
    return code
