"""Figure 1 — Lambda cold start: import time of each handler module in a fresh interpreter
÷ a bare `import boto3` in the same run; and each deployment package's and the layer's size.

Goal: every handler ≤ 1.5× boto3; layer ≤ 15 MB unzipped; no package holds sagemaker,
stepfunctions, numpy or pandas.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._common import figure, summarize
from shared.resources import FUNCTIONS, REPO_ROOT, function_environment

FORBIDDEN = ("sagemaker", "stepfunctions", "numpy", "pandas")
_TIMER = (
    "import time, sys; t = time.perf_counter(); import {module}; "
    "sys.stdout.write(repr(time.perf_counter() - t))"
)
_DUMMY_VALUES = {
    "ARTIFACT_BUCKET": "bench-bucket",
    "ARTIFACTS_PREFIX": "runs/",
    "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/bench",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:bench",
    "ECR_REPOSITORY": "bench",
    "DATA_PREFIX": "data/",
    "PIPELINE_DEFAULTS": "{}",
    "DEFAULT_IMAGE_URI": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bench:latest",
    "ENDPOINT_ALARM_NAMES": "",
    "STAGING_ALARM_NAMES": "",
    "MODEL_PACKAGE_GROUP": "bench",
    "COORDINATION_TABLE": "bench-coordination",
}


def dummy_environment() -> dict[str, str]:
    """A value for every key any function declares: the realistic ones above, a placeholder
    for the rest (only the import is timed), so a new setting cannot break the figure."""
    keys = {key for spec in FUNCTIONS for key in spec.env}
    return {key: _DUMMY_VALUES.get(key, f"bench-{key.lower()}") for key in sorted(keys)}


def _import_seconds(module: str, env: dict[str, str], reps: int) -> dict[str, Any]:
    samples = []
    for _ in range(reps):
        out = subprocess.run(
            [sys.executable, "-c", _TIMER.format(module=module)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=REPO_ROOT,
        )
        samples.append(float(out.stdout))
    return summarize(samples)


def _dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def _forbidden_in(path: Path) -> list[str]:
    return sorted({p.name for p in path.rglob("*") if p.is_dir() and p.name in FORBIDDEN})


def run(quick: bool = False) -> list[dict[str, Any]]:
    reps = 5 if quick else 11
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    base_env.update(AWS_DEFAULT_REGION="us-east-1", PYTHONDONTWRITEBYTECODE="1")
    rows: list[dict[str, Any]] = []
    # Interleave baseline and handlers so drift in machine load hits both alike.
    baseline = _import_seconds("boto3", base_env, reps)
    for spec in FUNCTIONS:
        env = {**base_env, **function_environment(spec, dummy_environment())}
        module = spec.handler.rsplit(".", 1)[0]
        value = _import_seconds(module, env, reps)
        ratio = value["median"] / baseline["median"]
        rows.append(
            figure(
                "1 cold start",
                f"{spec.key}: import {module}",
                value,
                "import boto3",
                baseline,
                "s",
                "≤ 1.5×",
                ratio <= 1.5,
            )
        )
    rows.extend(_package_sizes())
    return rows


def _package_sizes() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lambda"
        subprocess.run(
            [sys.executable, "-m", "infra.build_lambda", str(out)],
            check=True,
            cwd=REPO_ROOT,
            capture_output=True,
        )
        layer = out / "layer"
        bad = _forbidden_in(layer)
        rows.append(
            figure(
                "1 package size",
                "dependency layer (unzipped)",
                _dir_mb(layer),
                "goal",
                15.0,
                "MB",
                "≤ 15 MB, none of " + "/".join(FORBIDDEN),
                _dir_mb(layer) <= 15.0 and not bad,
                note=f"forbidden found: {bad}" if bad else "",
            )
        )
        for spec in FUNCTIONS:
            pkg = out / "functions" / spec.key
            if not pkg.exists():
                continue
            bad = _forbidden_in(pkg)
            rows.append(
                figure(
                    "1 package size",
                    f"{spec.key} package",
                    _dir_mb(pkg),
                    "layer",
                    _dir_mb(layer),
                    "MB",
                    "none of " + "/".join(FORBIDDEN),
                    not bad,
                )
            )
    return rows


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
