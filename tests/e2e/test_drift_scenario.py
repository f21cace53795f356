"""`sfn-mlops local run --scenario drift` as a user runs it: a first run deploys, shifted
traffic reaches the production endpoint, the scheduled check names the shifted features,
the drift alarm goes into ALARM and starts one retraining through the gate. A module of its
own: the scenario's local cloud runs in the CLI's process, one at a time."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from browser import assert_drawn, render

from shared import resources

pytestmark = pytest.mark.e2e

SFN_MLOPS = str(Path(sys.executable).parent / "sfn-mlops")


def test_shifted_traffic_is_detected_and_starts_one_retraining(tmp_path: Path) -> None:
    # WHEN the drift scenario runs
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [SFN_MLOPS, "local", "run", "--scenario", "drift", "--plain", "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = (run_dir / "summary.txt").read_text()

    # THEN the check ran over the captured traffic and named exactly the shifted features
    shifted = re.search(r"with (\S+), (\S+) shifted by", done.stdout)
    assert shifted is not None, done.stdout[-2000:]
    drifted = re.findall(r"drifted (\S+): PSI ([\d.]+)  KS D ([\d.]+)  p (\S+)", summary)
    assert [name for name, *_ in drifted] == list(shifted.groups())
    for _, psi, _, p in drifted:
        assert float(psi) >= 0.2 or float(p) < 0.01
    assert "28 other features: no drift" in summary  # breast_cancer: 30 features
    report = json.loads((run_dir / "drift" / "drift.json").read_text())
    assert report["status"] == "drift"
    assert report["drifted_features"] == list(shifted.groups())
    assert report["records"] >= resources.monitoring().min_records
    # ... and drew it: the PSI figure, the drifted features marked, no network needed
    shown = render(run_dir / "drift" / "drift.html", tmp_path / "drift.png")
    assert_drawn(shown, {"drift-psi"})
    assert f"Drifted: {', '.join(shifted.groups())}." in shown["text"]
    # ... the alarm went into ALARM and started one retraining, which ran through the gate
    assert f"drift alarm {resources.DRIFT_ALARM_NAME}: ALARM" in summary
    retrainings = [d for d in run_dir.iterdir() if d.is_dir() and d.name.startswith("drift-")]
    assert len(retrainings) == 1
    (retraining,) = retrainings
    described = json.loads((retraining / "execution.json").read_text())
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["input"])["tags"]["trigger"] == "drift"
    gate = json.loads(described["output"])["gate"]
    assert gate["champion"] is not None  # compared with the model the first run deployed
    assert re.search(
        rf"retraining started by the drift alarm: {retraining.name}  SUCCEEDED  -> \S", summary
    )
