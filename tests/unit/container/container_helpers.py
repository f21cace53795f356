"""Helpers for the container's tests: entrypoint runs against a temporary /opt/ml tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from sfn_container.data import write_dataset

REPO = Path(__file__).resolve().parents[3]


def run_entrypoint(
    command: str,
    opt_ml: Path,
    env: dict[str, str] | None = None,
    args: list[str] | tuple[str, ...] = (),
    python: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m sfn_container COMMAND` with OPT_ML pointing at a temporary tree (or
    `python PYTHON...`, e.g. a ``-c`` script that runs the entrypoint and inspects it)."""
    full_env = {
        **os.environ,
        "OPT_ML": str(opt_ml),
        "PYTHONPATH": f"{REPO / 'container'}{os.pathsep}{REPO}",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, *(python or ["-m", "sfn_container", command]), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def failure(opt_ml: Path) -> str:
    return (opt_ml / "output" / "failure").read_text(encoding="utf-8")


def stage_raw(opt_ml: Path, dataset: str) -> Path:
    return write_dataset(dataset, opt_ml / "processing" / "input" / "raw")


def stage_training(opt_ml: Path, splits: Path, hyperparameters: dict[str, str]) -> None:
    """Copy preprocess outputs into the training channels, as SageMaker downloads them."""
    for channel in ("train", "validation"):
        shutil.copytree(splits / channel, opt_ml / "input" / "data" / channel)
    config = opt_ml / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
