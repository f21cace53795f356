"""Endpoints, for real: each runs `python -m sfn_container serve` on a free loopback port
with the model from its endpoint config (Creating -> InService once /ping answers).
UpdateEndpoint (not in moto) is blue/green: the new server must be healthy before traffic
moves, then the old one is stopped; a failed update leaves the endpoint InService on the
old config with FailureReason set. InvokeEndpoint forwards to the endpoint's current
server; DeleteEndpoint stops it.
"""

from __future__ import annotations

import io
import sys
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfn_mlops.local import procs
from sfn_mlops.local.sagemaker.common import Workspace, now, split_s3, tail

HEALTH_TIMEOUT_SECONDS = 60.0


@dataclass
class Server:
    config_name: str
    port: int
    proc: Any
    workdir: Path


class EndpointManager:
    """The model servers behind moto's endpoints (see the module docstring)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.servers: dict[str, Server] = {}  # endpoint name -> the server taking traffic

    def _start_server(self, endpoint: str, config_name: str, backend: Any) -> Server:
        """Start the model server for `config_name` and wait until /ping answers 200."""
        config = backend.endpoint_configs[config_name]
        variant = config.production_variants[0]
        model = backend._models[variant["ModelName"]]
        container = model.primary_container or (model.containers or [{}])[0]
        workdir = self.ws.root / "endpoints" / endpoint / f"{config_name}-{int(time.time() * 1000)}"
        opt_ml = workdir / "opt_ml"
        model_dir = opt_ml / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        data_url = container.get("ModelDataUrl")
        if data_url:
            bucket, key = split_s3(data_url)
            body = self.ws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            try:
                with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
                    tar.extractall(model_dir, filter="data")
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise RuntimeError(
                    f"Failed to extract model data archive from URL {data_url!r}: {exc}"
                ) from exc
        port = procs.free_port()
        env = self.ws.base_env()
        env.update(container.get("Environment") or {})
        env.update(
            OPT_ML=str(opt_ml), SAGEMAKER_BIND_TO_PORT=str(port), SM_MODEL_DIR=str(model_dir)
        )
        proc = self.ws.spawn(
            "serve", endpoint, [sys.executable, "-m", "sfn_container", "serve"], env, workdir
        )
        deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
        while time.monotonic() < deadline and not self.ws.closed:
            if proc.poll() is not None:
                self.ws.drain(proc)
                procs.forget(proc)
                raise RuntimeError(
                    f"The primary container for production variant {variant['VariantName']} "
                    f"exited with code {proc.returncode} before passing the ping health check: "
                    f"{tail(workdir / 'serve.log', 3)}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as r:
                    if r.status == 200:
                        return Server(config_name, port, proc, workdir)
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        procs.kill(proc)
        raise RuntimeError(
            f"The primary container for production variant {variant['VariantName']} did not "
            "pass the ping health check. Please check CloudWatch logs for this endpoint."
        )

    def create_endpoint(self, fake: Any, backend: Any) -> None:
        fake.endpoint_status = "Creating"
        fake.failure_reason = None
        self.ws._start_thread(self._create_main, fake, backend)

    def _create_main(self, fake: Any, backend: Any) -> None:
        try:
            server = self._start_server(fake.endpoint_name, fake.endpoint_config_name, backend)
        except Exception as exc:
            fake.failure_reason = str(exc)[:1024]
            fake.endpoint_status = "Failed"
        else:
            self._take_traffic(fake.endpoint_name, server)
            fake.endpoint_status = "InService"
        fake.last_modified_time = now()

    def update_endpoint(self, fake: Any, backend: Any, config_name: str) -> None:
        fake.endpoint_status = "Updating"
        fake.last_modified_time = now()
        self.ws._start_thread(self._update_main, fake, backend, config_name)

    def _update_main(self, fake: Any, backend: Any, config_name: str) -> None:
        try:
            server = self._start_server(fake.endpoint_name, config_name, backend)
        except Exception as exc:
            # blue/green: the old fleet keeps serving, the endpoint stays InService
            fake.failure_reason = str(exc)[:1024]
            fake.endpoint_status = "InService"
            fake.last_modified_time = now()
            return
        self._take_traffic(fake.endpoint_name, server)
        fake.endpoint_config_name = config_name
        fake.production_variants = fake._process_production_variants(
            backend.endpoint_configs[config_name].production_variants
        )
        fake.failure_reason = None
        fake.last_modified_time = now()
        fake.endpoint_status = "InService"

    def _take_traffic(self, endpoint: str, server: Server) -> None:
        """Traffic moves to `server` (green); the one it replaces (blue) is stopped."""
        with self.ws.lock:
            old = self.servers.get(endpoint)
            self.servers[endpoint] = server
        if old is not None:
            procs.kill(old.proc)

    def delete_endpoint(self, name: str) -> None:
        with self.ws.lock:
            server = self.servers.pop(name, None)
        if server is not None:
            procs.kill(server.proc)

    def invoke(
        self, endpoint: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        server = self.servers.get(endpoint)
        if server is None:
            raise LookupError(endpoint)
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.port}/invocations", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def close(self) -> None:
        with self.ws.lock:
            servers = list(self.servers.values())
            self.servers.clear()
        for server in servers:
            procs.kill(server.proc)
