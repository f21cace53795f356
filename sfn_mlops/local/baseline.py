"""The same work as the pipeline's three jobs, run as bare scripts: preprocess, train and
evaluate called directly (`python -m sfn_container ...`) on one `/opt/ml` tree, no local
cloud, no state machine. `sfn-mlops local run --baseline` times it next to the pipeline."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from sfn_mlops.local.stack import local_defaults


def _run(entry: str, opt_ml: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sfn_container", entry],
        env={**env, "OPT_ML": str(opt_ml)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{entry} failed: {done.stderr[-2000:]}")


def bare_scripts(raw_csv: Path, workdir: Path) -> float:
    """Seconds for preprocess + train + evaluate on `raw_csv` (same settings as the pipeline)."""
    defaults = local_defaults()
    env = dict(os.environ)
    env.update(TARGET_COLUMN=defaults["target_column"], PROBLEM_TYPE=defaults["problem_type"])
    if workdir.exists():
        shutil.rmtree(workdir)
    pre, train, evaluate = workdir / "preprocess", workdir / "train", workdir / "evaluate"
    started = time.perf_counter()
    raw = pre / "processing" / "input" / "raw"
    raw.mkdir(parents=True)
    shutil.copy(raw_csv, raw / raw_csv.name)
    _run("preprocess", pre, env)
    out = pre / "processing" / "output"
    for channel in ("train", "validation"):
        shutil.copytree(out / channel, train / "input" / "data" / channel)
    config = train / "input" / "config"
    config.mkdir(parents=True)
    hps = {k: str(v) for k, v in defaults["hyperparameters"].items()}
    hps.update(target_column=defaults["target_column"], problem_type=defaults["problem_type"])
    (config / "hyperparameters.json").write_text(json.dumps(hps))
    _run("train", train, env)
    challenger = evaluate / "processing" / "input" / "challenger"
    challenger.mkdir(parents=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted((train / "model").rglob("*")):
            tar.add(path, arcname=path.relative_to(train / "model").as_posix())
    (challenger / "model.tar.gz").write_bytes(buf.getvalue())
    shutil.copytree(out / "test", evaluate / "processing" / "input" / "test")
    _run("evaluate", evaluate, env)
    elapsed = time.perf_counter() - started
    report = evaluate / "processing" / "output" / "evaluation" / "evaluation.json"
    if not report.is_file():
        raise RuntimeError("evaluate wrote no evaluation.json")
    return elapsed
