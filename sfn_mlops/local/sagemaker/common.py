"""What the SageMaker jobs and endpoints share: activity tracking (so a Wait state can skip
to the next change), S3 transfer of job inputs and outputs (in-process: Workspace.download),
the base environment of a container process, and the tracked spawning of those processes
(all of them stopped on close).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import mmap
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sfn_mlops.local import procs
from sfn_mlops.local.logs import LocalLogs, log_stream_of

ENTRYPOINTS = ("preprocess", "train", "evaluate", "drift", "serve")
_HOST_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
#: How long close() waits for job and endpoint threads to end after killing their processes.
CLOSE_JOIN_SECONDS = 10.0
#: a job output from this size on is put from a memory map (Workspace.put_file)
MAP_MIN_BYTES = 8 * 1024 * 1024


class ClosedError(RuntimeError):
    """The local cloud is stopping: no new container process may start."""


def now() -> dt.datetime:
    return dt.datetime.now(tz=dt.UTC)


def split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


class Workspace:
    """The state the job runner and the endpoint manager share (one per local cloud)."""

    def __init__(
        self,
        s3_client_factory: Callable[[], Any],
        root: Path,
        region: str,
        logs: LocalLogs | None = None,
    ) -> None:
        self._s3_factory = s3_client_factory
        self.logs = logs  # what jobs and servers print also goes to CloudWatch Logs
        self.root = root.resolve()  # children run in their own cwd: paths must be absolute
        self.region = region
        # Activity: jobs and endpoint operations under way, and a counter of finished ones,
        # so a Wait state can skip ahead to the next change (see sfn.install fast waits).
        self._activity = threading.Condition()
        self._busy = 0
        self._changes = 0
        self.lock = threading.Lock()
        #: RoleArn -> the AWS environment of a container running as that role (credentials
        #: the local IAM checks, the local cloud's endpoint), as SageMaker gives a job its
        #: role's credentials; None: containers get none (they make no AWS calls then)
        self.role_env: Callable[[str], dict[str, str]] | None = None
        self._threads: list[threading.Thread] = []
        self._procs: list[subprocess.Popen[Any]] = []
        self.closed = False

    # --- S3 ------------------------------------------------------------------------------
    @property
    def s3(self) -> Any:
        return self._s3_factory()

    # Job inputs and outputs go straight to moto's S3 backend (same process), not through
    # its HTTP server: at 1M rows the HTTP path cost 1.3 s of a 8.6 s training job (request
    # parsing, signing, copies of a 150 MB body), in-process is one read or write of the
    # bytes. What the backend does on a PutObject still happens (versions, default
    # encryption, the Object Created notification to EventBridge). The job runner was never
    # an IAM-checked principal (it signs with the cloud's dummy credentials, see iam.py), so
    # no permission check is skipped; the endpoint's model download keeps using `s3`.
    @staticmethod
    def _s3_backend() -> Any:
        from moto.core import DEFAULT_ACCOUNT_ID  # what the cloud's dummy credentials map to
        from moto.s3.models import s3_backends

        return s3_backends[DEFAULT_ACCOUNT_ID]["global"]

    def download(
        self, uri: str, dest: Path, shard: tuple[int, int] | None = None, required: bool = True
    ) -> None:
        """An S3 prefix (or one object) into `dest`, keeping relative paths.

        `shard` = (host index, host count): only that host's ShardedByS3Key share of the
        objects (see sfn_mlops.local.hosts.shard_keys); a host whose share is empty gets an
        empty directory, as on SageMaker. `required`: no object at all is an error."""
        bucket, prefix = split_s3(uri)
        dest.mkdir(parents=True, exist_ok=True)
        backend = self._s3_backend()
        found, _, _, _ = backend.list_objects(backend.get_bucket(bucket), prefix, None, None, None)
        wanted: dict[str, Any] = {}
        for obj in found:
            key = obj.name
            if key.endswith("/"):
                continue
            rel = key[len(prefix) :].lstrip("/") if key != prefix else key.rsplit("/", 1)[-1]
            if rel:
                wanted[key] = (rel, obj)
        if not wanted and required:
            raise FileNotFoundError(f"no S3 objects under {uri}")
        keys = list(wanted)
        if shard is not None:
            from sfn_mlops.local.hosts import shard_keys

            keys = shard_keys(keys, shard[1], shard[0])
        for key in keys:
            rel, obj = wanted[key]
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            self._write_object(obj, target)

    @staticmethod
    def _write_object(obj: Any, target: Path) -> None:
        """An object's bytes into `target`. moto keeps an object over ~5 MB in a temporary
        file (FakeKey's SpooledTemporaryFile, rolled over): that file is copied by the
        kernel (copy_file_range), under the key's lock as FakeKey.value reads it. Measured
        on a 150 MB object (2 loaded cores): 0.15 s against 0.35 s for `value` (one read
        into a new bytes object) and a write, and no GIL held meanwhile. A small object,
        a kernel that cannot copy between these files, or an OS without copy_file_range
        (macOS) takes `value`."""
        buffer = getattr(obj, "_value_buffer", None)
        if buffer is not None and getattr(buffer, "_rolled", False):
            try:
                with obj.lock, target.open("wb") as out:
                    size, done = int(obj.contentsize), 0
                    while done < size:
                        copied = os.copy_file_range(
                            buffer.fileno(), out.fileno(), size - done, done
                        )
                        if copied == 0:
                            raise OSError("short copy")
                        done += copied
                return
            except (OSError, ValueError, AttributeError):  # AttributeError: no such call (macOS)
                pass  # written again below, from the bytes
        target.write_bytes(obj.value)

    def put_bytes(self, bucket: str, key: str, body: bytes) -> None:
        """PutObject, in-process (see above)."""
        self._s3_backend().put_object(bucket, key, body)

    def put_file(self, bucket: str, key: str, path: Path) -> None:
        """PutObject of a file's bytes, in-process. A large file is handed to moto as a
        read-only memory map with its MD5 (the ETag, which the Object Created event
        carries) computed from the map: moto then copies the bytes once into its key
        buffer instead of our read plus its write, and does not read them back for the
        ETag. Measured on a 150 MB job output (2 loaded cores, 3 runs): 0.5-0.9 s, against
        1.2-1.6 s for read_bytes, put_object and moto's ETag read-back."""
        size = path.stat().st_size
        if size < MAP_MIN_BYTES:
            self.put_bytes(bucket, key, path.read_bytes())
            return
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
            etag = hashlib.md5(view, usedforsecurity=False).hexdigest()
            self._s3_backend().put_object(bucket, key, view, etag=etag)  # type: ignore[arg-type]

    def upload_dir(self, src: Path, uri: str) -> None:
        bucket, prefix = split_s3(uri)
        prefix = prefix.rstrip("/")
        for path in sorted(src.rglob("*")):
            if path.is_file():
                rel = path.relative_to(src).as_posix()
                self.put_file(bucket, f"{prefix}/{rel}" if prefix else rel, path)

    # --- container processes -------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in _HOST_KEYS if k in os.environ}
        root = str(Path(__file__).resolve().parents[3])
        env.update(PYTHONPATH=os.pathsep.join([root, str(Path(root) / "container")]))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def spawn(
        self, kind: str, name: str, argv: list[str], env: dict[str, str], workdir: Path
    ) -> Any:
        """Start a container process, tracked until close(). Its output goes to
        <workdir>/<kind>.log and, as on SageMaker, to the log stream of job or endpoint
        `name` in the local cloud's CloudWatch Logs (see sfn_mlops.local.logs)."""
        with self.lock:
            if self.logs is None:
                with open(workdir / f"{kind}.log", "ab") as log:
                    return self._tracked(argv, env, workdir, stdout=log, stderr=log)
            proc = self._tracked(
                argv, env, workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            self.attach_logs(proc, kind, name, env, workdir)
            return proc

    def spawn_standby(self, argv: list[str], env: dict[str, str], workdir: Path) -> Any:
        """Start a process that waits (stdin) for the job it will be given, tracked until
        close() like any other; its output is held in its pipe until attach_logs()."""
        with self.lock:
            return self._tracked(
                argv,
                env,
                workdir,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )

    def _tracked(self, argv: list[str], env: dict[str, str], workdir: Path, **streams: Any) -> Any:
        """procs.spawn, the child tracked until close() (the caller holds the lock)."""
        if self.closed:
            raise ClosedError("the local cloud is stopping")
        proc = procs.spawn(argv, env=env, cwd=workdir, **streams)
        self._procs.append(proc)
        return proc

    def attach_logs(
        self, proc: Any, kind: str, name: str, env: dict[str, str], workdir: Path
    ) -> None:
        """Pump a child's output (a pipe) into <workdir>/<kind>.log and the log stream of
        job or endpoint `name` (needs the cloud's logs)."""
        if self.logs is None:
            raise RuntimeError("attach_logs needs the local cloud's logs")
        log = open(workdir / f"{kind}.log", "ab")  # noqa: SIM115 - closed by the pump
        group, stream = log_stream_of(kind, name, env.get("SM_CURRENT_HOST", "algo-1"))
        proc.log_pump = self.logs.pump(proc.stdout, log, group, stream, close=True)

    @staticmethod
    def drain(proc: Any) -> None:
        """Wait (bounded) until an exited child's last lines are in its log file and stream,
        so its FailureReason tail and `sfn-mlops logs` see them."""
        pump = getattr(proc, "log_pump", None)
        if pump is not None:
            pump.join(timeout=5)

    # --- activity ------------------------------------------------------------------------
    def _start_thread(self, target: Callable[..., None], *args: Any) -> None:
        """Run a job or endpoint operation; its end (whatever the outcome) is a change."""

        def run() -> None:
            try:
                target(*args)
            finally:
                with self._activity:
                    self._busy -= 1
                    self._changes += 1
                    self._activity.notify_all()

        with self._activity:
            self._busy += 1
        t = threading.Thread(target=run, daemon=True)
        with self.lock:
            self._threads.append(t)
        t.start()

    def wait_for_change(self, timeout: float, is_running: Callable[[], bool]) -> None:
        """Block until a job or endpoint operation ends, `timeout` passes, or nothing is
        under way at all (then nothing can change, so there is nothing to wait for)."""
        with self._activity:
            seen = self._changes
            self._activity.wait_for(
                lambda: self._changes != seen or self._busy == 0 or not is_running(),
                timeout=timeout,
            )

    def close(self) -> None:
        """No new process starts; every one started is killed (process group); the
        operation threads get a bounded time to end."""
        import time

        with self.lock:
            self.closed = True
            started = list(self._procs)
            threads = list(self._threads)
        with contextlib.suppress(Exception):
            procs.kill_many(started, grace_seconds=1.0)
        deadline = time.monotonic() + CLOSE_JOIN_SECONDS
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
