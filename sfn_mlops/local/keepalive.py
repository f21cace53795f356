"""moto's server with HTTP/1.1 keep-alive: the same werkzeug server, handler and app as
moto's ThreadedMotoServer, except that a connection serves more than one request.

Why: werkzeug's development server ends every response with ``Connection: close``, so each
boto3 call through the local cloud opened a TCP connection, and the server started a thread
for it. Measured on this 2-core machine (boto3 sagemaker-runtime InvokeEndpoint against a
trivial app, 1500 calls): 3.7-4.1 ms and 3.6-3.9 ms CPU per call on werkzeug as moto runs
it, 1.7-2.4 ms and 1.7-2.3 ms CPU with keep-alive; a warm Invoke of the inference Lambda
makes two such calls (the caller's Invoke, the handler's InvokeEndpoint). Earlier, moto on
cheroot with keep-alive gave no gain: cheroot's own per-request work cost what the
connection saved, so this keeps werkzeug and only stops it closing the connection.

werkzeug closes for two reasons, and both are handled here instead:
- http.server cannot skip a request body the app left unread before it parses the next
  request line. A connection is kept only when the app read the whole body (counted as it
  reads it) and the request was not chunked; otherwise it closes as before.
- after each response werkzeug drains the socket for 10 ms (so that a client still sending
  a body sees the response, not a reset). On a kept connection that would wait 10 ms and
  could swallow the client's next request, so it is skipped there (the body was read).
A client's ``Connection: close`` or HTTP/1.0 still closes; an error after the headers went
out closes (the response may be cut short). Stopping the server also closes the kept
connections, so no request reaches a stopped cloud.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import ThreadedWSGIServer

#: per handler thread: whether the request being answered keeps its connection
_local = threading.local()


class _CountingInput:
    """The request body stream, counting what the app reads from it."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.read_bytes += len(data)
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        n = int(self._stream.readinto(buffer) or 0)
        self.read_bytes += n
        return n

    def readline(self, size: int = -1) -> bytes:
        data = self._stream.readline(size)
        self.read_bytes += len(data)
        return bytes(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Handler(MotoRequestHandler):
    #: headers and body are two writes: without TCP_NODELAY the body of a kept connection
    #: waits for the client's delayed ACK (measured: 40 ms per call)
    disable_nagle_algorithm = True

    def handle_one_request(self) -> None:
        _local.keep = False
        _local.handler = self
        self._input: _CountingInput | None = None
        try:
            super().handle_one_request()
        finally:
            _local.keep = False
            _local.handler = None

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        if not environ.get("wsgi.input_terminated"):  # chunked: werkzeug dechunks it
            self._input = _CountingInput(environ["wsgi.input"])
            environ["wsgi.input"] = self._input
        return environ

    def _body_read(self) -> bool:
        if self._input is None:
            return False
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return False
        return self._input.read_bytes >= length

    def send_header(self, keyword: str, value: str) -> None:
        if (
            keyword.lower() == "connection"
            and value.lower() == "close"
            and not self.close_connection  # the client asked to close, or HTTP/1.0
            and self.request_version == "HTTP/1.1"
            and self._body_read()
        ):
            _local.keep = True
            return
        super().send_header(keyword, value)

    def setup(self) -> None:
        super().setup()
        self.server.connections.add(self.connection)  # type: ignore[attr-defined]

    def finish(self) -> None:
        self.server.connections.discard(self.connection)  # type: ignore[attr-defined]
        super().finish()


class KeepAliveWSGIServer(ThreadedWSGIServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        #: the open client connections (closed when the server stops)
        self.connections: set[socket.socket] = set()
        super().__init__(*args, **kwargs)

    def log(self, type: str, message: str, *args: Any) -> None:
        handler = getattr(_local, "handler", None)
        if type == "error" and handler is not None:  # the app failed: the response may be cut
            handler.close_connection = True
            _local.keep = False
        super().log(type, message, *args)

    def close_connections(self) -> None:
        for conn in list(self.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Selectors:
    """werkzeug.serving's `selectors` while installed: the after-response drain is skipped
    on a connection that is kept (see the module doc); anything else is the real module."""

    def __getattr__(self, name: str) -> Any:
        return getattr(selectors, name)

    def DefaultSelector(self) -> Any:  # noqa: N802 (the module's name)
        return _NoDrain() if getattr(_local, "keep", False) else selectors.DefaultSelector()


class _NoDrain:
    def register(self, *args: Any) -> None:
        return None

    def select(self, timeout: float | None = None) -> list[Any]:
        return []

    def close(self) -> None:
        return None


def make_server(host: str, port: int, app: Any) -> KeepAliveWSGIServer:
    """A threaded werkzeug server for the WSGI `app` whose connections are kept alive (moto's
    below; the inference benchmark's floor: a boto3 call to a trivial app). Install
    `patch_werkzeug` while it serves; `close_connections()` after shutdown()."""
    return KeepAliveWSGIServer(host, port, app, handler=_Handler)


class KeepAliveMotoServer(ThreadedMotoServer):
    """ThreadedMotoServer whose connections are kept alive (module doc). Install
    `patch_werkzeug` while it serves."""

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(self._ip_address, self._port, app)
        self._server_ready_event.set()
        self._server.serve_forever()

    def stop(self) -> None:
        server = self._server
        super().stop()
        if isinstance(server, KeepAliveWSGIServer):
            server.server_close()
            server.close_connections()


def patch_werkzeug(patches: Any) -> None:
    """Skip werkzeug's after-response drain on kept connections (undone with `patches`)."""
    import werkzeug.serving

    patches.set(werkzeug.serving, "selectors", _Selectors())
