"""The README's "Use your own data" examples, run exactly as written against `sfn-mlops local
up --no-data` (the command the section says to start), so they cannot drift from what works:
every shell block of the section is extracted from README.md and run by bash in a directory
where `.venv` is this checkout's virtualenv, with the environment `local up` prints."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from test_cli import _read_until

from sfn_mlops.local.procs import free_port
from sfn_mlops.local.stack import local_defaults

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SECTION = "## Use your own data"


def own_data_blocks() -> dict[str, str]:
    """The section's ```sh blocks by the paragraph line before each (``Classification
    (...)``, ``Regression (...)``)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end != -1 else len(text)]
    blocks = {}
    for match in re.finditer(r"\n([^\n]+)\n\n```sh\n(.*?)\n```", section, re.S):
        blocks[match.group(1).split(" ", 1)[0]] = match.group(2)
    return blocks


def test_the_section_has_one_example_per_problem_type() -> None:
    blocks = own_data_blocks()
    assert sorted(blocks) == ["Classification", "Regression"], blocks
    assert '"problem_type": "binary_classification"' in blocks["Classification"]
    assert '"problem_type": "regression"' in blocks["Regression"]
    assert "local up --no-data" in (REPO / "README.md").read_text(encoding="utf-8")


def _local_up(workdir: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """`sfn-mlops local up --no-data` on a free port, and what it says to export."""
    cloud = subprocess.Popen(
        [str(BIN / "sfn-mlops"), "local", "up", "--no-data", "--port", str(free_port()),
         "--workdir", str(workdir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines = _read_until(cloud, "# bucket: ", timeout=120)  # after every export line
    exported = dict(
        line.removeprefix("export ").strip().split("=", 1)
        for line in lines
        if line.startswith("export ")
    )
    return cloud, exported


def _stop(cloud: subprocess.Popen[str]) -> None:
    cloud.send_signal(signal.SIGTERM)
    try:  # it stops two model servers too: bounded, but not tight on a loaded machine
        cloud.wait(timeout=120)
    finally:
        if cloud.poll() is None:
            cloud.kill()
            cloud.wait()


def test_readme_own_data_examples_run_as_written(tmp_path: Path) -> None:
    # one local cloud per example, as the section says (a stack serves one data set: its
    # endpoints are the only ones a payload may name)
    blocks = own_data_blocks()
    clouds: dict[str, tuple[subprocess.Popen[str], dict[str, str]]] = {}
    try:
        for name in blocks:
            clouds[name] = _local_up(tmp_path / f"cloud-{name}")
        running = {}
        for name, block in blocks.items():
            work = tmp_path / f"user-{name}"
            work.mkdir()
            (work / ".venv").symlink_to(BIN.parent)  # the README's commands name .venv/bin/...
            # both examples at once (independent clouds)
            running[name] = subprocess.Popen(
                ["bash", "-euo", "pipefail", "-c", block],
                cwd=work,
                env={**os.environ, **clouds[name][1]},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        outputs = {}
        for name, process in running.items():
            try:
                outputs[name] = process.communicate(timeout=600)[0]
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            assert process.returncode == 0, f"{name}:\n{outputs[name][-4000:]}"
        for name, output in outputs.items():
            assert "SUCCEEDED" in output, f"{name}:\n{output[-4000:]}"
        # each cloud's stack serves its data set's model, registered in its model group
        defaults = local_defaults()
        for name, (_, exported) in clouds.items():
            sm = boto3.client(
                "sagemaker",
                endpoint_url=exported["AWS_ENDPOINT_URL"],
                region_name=exported["AWS_DEFAULT_REGION"],
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            endpoint = sm.describe_endpoint(EndpointName=defaults["endpoint_name"])
            assert endpoint["EndpointStatus"] == "InService", (name, endpoint)
            group = defaults["model_package_group"]
            packages = sm.list_model_packages(ModelPackageGroupName=group)
            assert len(packages["ModelPackageSummaryList"]) == 1, (name, packages)
    finally:
        for cloud, _ in clouds.values():
            _stop(cloud)
