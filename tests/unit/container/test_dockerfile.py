"""container/Dockerfile against SageMaker's container contract, checked statically.

No Docker engine here: this reads the Dockerfile and the files it copies. What only a real
build and push proves (the base image pulls, pip resolves the pins, SageMaker starts it) is
listed in the README's serving notes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

CONTAINER = Path(__file__).resolve().parents[3] / "container"
PATH_DIRS = ("/usr/local/bin", "/usr/bin", "/bin")  # on PATH in the python:*-slim base


def _instructions() -> list[tuple[str, str, list[str]]]:
    """(INSTRUCTION, arguments, comment lines just above it), continuations joined."""
    out: list[tuple[str, str, list[str]]] = []
    comments: list[str] = []
    current = ""
    for raw in (CONTAINER / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not current and line.startswith("#"):
            comments.append(line.lstrip("# "))
            continue
        if not line and not current:
            comments = []
            continue
        current += " " + line.rstrip("\\").strip() if current else line.rstrip("\\").strip()
        if line.endswith("\\"):
            continue
        word, _, args = current.partition(" ")
        out.append((word.upper(), args.strip(), comments))
        comments, current = [], ""
    return out


INSTRUCTIONS = _instructions()


def _all(name: str) -> list[tuple[str, list[str]]]:
    return [(args, notes) for word, args, notes in INSTRUCTIONS if word == name]


def test_no_non_root_user() -> None:
    users = _all("USER")
    assert all(args.split(":")[0] in ("root", "0") for args, _ in users), users
    if users:  # hadolint's DL3002 is ignored on purpose, with SageMaker's reason
        notes = " ".join(users[-1][1])
        assert "hadolint ignore=DL3002" in notes
        assert "Custom Inference Code with Hosting Services" in notes


def test_port_8080_is_exposed() -> None:
    ports = [port for args, _ in _all("EXPOSE") for port in args.split()]
    assert "8080" in ports


@pytest.mark.parametrize("name", ["CMD", "ENTRYPOINT"])
def test_entrypoints_are_exec_form(name: str) -> None:
    for args, _ in _all(name):
        assert isinstance(json.loads(args), list), f"{name} {args} is shell form"


def test_default_command_is_serve() -> None:
    cmds = _all("CMD")
    assert cmds
    assert json.loads(cmds[-1][0]) == ["serve"]
    assert not _all("ENTRYPOINT") or json.loads(_all("ENTRYPOINT")[-1][0]) == []


@pytest.mark.parametrize("step", ["train", "serve", "preprocess", "evaluate"])
def test_steps_are_executables_on_path(step: str) -> None:
    """`docker run IMAGE train|serve` runs an executable named so on PATH."""
    script = CONTAINER / "bin" / step
    assert script.is_file()
    assert os.access(script, os.X_OK), f"{script} is not executable"
    text = script.read_text()
    assert text.startswith("#!")
    assert re.search(rf"^exec python -m sfn_container {step} \"\$@\"$", text, re.M), (
        "the script must exec the step (so SIGTERM reaches Python, not a shell)"
    )
    copies = [args.split() for args, _ in _all("COPY")]
    assert any(
        parts[0].rstrip("/") == "bin" and parts[-1].rstrip("/") in PATH_DIRS for parts in copies
    ), "container/bin/ must be copied into a directory on PATH"


def test_code_is_read_only_and_dependencies_pinned() -> None:
    runs = " ".join(args for args, _ in _all("RUN"))
    assert re.search(r"chmod -R a\+rX,go-w /opt/program", runs)
    assert "pip install --no-cache-dir -r /tmp/requirements.txt" in runs
    pins = dict(
        line.split("==", 1)
        for line in (CONTAINER / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for package in ("granian", "uvloop", "numpy", "xgboost-cpu"):  # what serve imports
        assert package in pins, f"{package} is not pinned in container/requirements.txt"
