"""The benchmark runner's table and error handling (no timings are asserted: these check the
writer, not the machine)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import run as runner
from benchmarks._common import figure, summarize


def _meta(**extra: Any) -> dict[str, Any]:
    return {
        "command": "python -m benchmarks.run --quick",
        "date": "2026-01-01 00:00 UTC",
        "quick": True,
        "seconds": 12.0,
        "machine": {
            "nproc": 2,
            "memory_gb": 8.0,
            "cpu": "test cpu",
            "python": "3.11.7",
            "platform": "Linux",
            "git": "abc1234",
        },
        **extra,
    }


def _table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def test_table_has_every_column_and_judges_goals() -> None:
    # Given a measured row (with reps) and an informational one (met=None)
    measured = figure(
        "4 inference Lambda",
        "warm invoke",
        summarize([0.020, 0.018, 0.030]),
        "direct HTTP",
        summarize([0.001, 0.001, 0.002]),
        "s",
        "≤ 1.2×",
        False,
        note="layers: a | b",
    )
    info = figure("5 cost", "USD per execution", 0.0016, "fixed poll", 0.0099, "USD", "—")
    # When the table is written
    text = runner.markdown([measured, info], _meta())
    # Then the header names the machine and how to read the ratio
    assert "2 CPUs (test cpu), 8.0 GB memory, Python 3.11.7" in text
    assert "*ratio* = value ÷ baseline" in text
    assert "Goals met: 0 of 1." in text
    header, *rows = _table_rows(text)
    assert header == [
        "figure",
        "subject",
        "value",
        "baseline",
        "ratio",
        "goal",
        "met",
        "value min–max",
        "reps",
    ]
    first, second = rows
    assert first[0] == "4 inference Lambda"
    assert first[1] == "warm invoke [1]"  # the note is a footnote
    assert first[2] == "20 ms"
    assert first[3] == "direct HTTP: 1 ms"
    assert first[4] == "20×"
    assert first[6] == "✗"
    assert first[7] == "18 ms – 30 ms"
    assert first[8] == "3"
    assert second[6] == ""  # not judged
    assert second[2] == "$0.001600"
    # ... and the note is listed with its pipe escaped (the table stays a table)
    assert "1. layers: a \\| b" in text


def test_met_goal_is_a_check_mark_and_counted() -> None:
    row = figure("1 cold start", "import x", 0.3, "import boto3", 0.3, "s", "≤ 1.5×", True)
    text = runner.markdown([row], _meta())
    assert _table_rows(text)[1][6] == "✓"
    assert "Goals met: 1 of 1." in text


def test_error_row_is_reported_as_a_missed_goal() -> None:
    row = runner.error_row("transitions", "exit status 1: RuntimeError: boom")
    text = runner.markdown([row], _meta())
    cells = _table_rows(text)[1]
    assert cells[0] == "5 transitions"
    assert cells[1] == "transitions: ERROR [1]"
    assert cells[2] == "—"
    assert cells[6] == "✗"
    assert "RuntimeError: boom" in text
    json.dumps(row, allow_nan=False)  # results.json stays strict JSON


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (2.5, "s", "2.50 s"),
        (0.0123, "s", "12.3 ms"),
        (0.0000456, "s", "45.6 µs"),
        (63.0, "transitions", "63 transitions"),
        (None, "s", "—"),
        (float("nan"), "MB", "—"),
        (0.25, "USD", "$0.2500"),
    ],
)
def test_fmt(value: Any, unit: str, text: str) -> None:
    assert runner.fmt(value, unit) == text


def test_a_failing_module_becomes_an_error_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a benchmark module whose run() raises (in a package on the child's path)
    pkg = tmp_path / "benchmarks"
    pkg.mkdir()
    for name in ("__init__.py", "_common.py", "run.py"):
        (pkg / name).write_text((runner.REPO / "benchmarks" / name).read_text())
    (pkg / "broken.py").write_text(
        "def run(quick=False):\n    raise RuntimeError('deliberately broken benchmark')\n"
    )
    (pkg / "fine.py").write_text(
        "from benchmarks._common import figure\n"
        "def run(quick=False):\n"
        "    return [figure('9 test', 'fine', 2.0, 'one', 1.0, 'x', '≤ 3×', True)]\n"
    )
    monkeypatch.setattr(runner, "REPO", tmp_path)
    # When each runs in its child process
    rows, error = runner.run_module("broken", quick=True, timeout=60)
    fine_rows, fine_error = runner.run_module("fine", quick=True, timeout=60)
    # Then the broken one reports its exception, and the other its rows
    assert rows == []
    assert error is not None
    assert "deliberately broken benchmark" in error
    assert fine_error is None
    assert [r["subject"] for r in fine_rows] == ["fine"]
    assert fine_rows[0]["ratio"] == 2.0
    assert sys.executable  # the child ran with this interpreter


def test_main_writes_json_and_markdown_without_touching_results_md_for_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a runner whose module run is replaced by a canned answer
    row = figure(
        "5 transitions", "per execution", 63.0, "fixed", 393.0, "transitions", "≤ 60", False
    )
    monkeypatch.setattr(runner, "run_module", lambda name, quick, timeout: ([row], None))
    results_md = tmp_path / "RESULTS.md"
    monkeypatch.setattr(runner, "RESULTS_MD", results_md)
    # When it runs one module
    assert runner.main(["--quick", "--only", "transitions", "--out", str(tmp_path / "out")]) == 0
    # Then results.json and results.md are written, and RESULTS.md is left alone
    (run_dir,) = (tmp_path / "out").iterdir()
    data = json.loads((run_dir / "results.json").read_text())
    assert data["rows"][0]["subject"] == "per execution"
    assert data["modules"]["transitions"]["error"] is None
    assert data["machine"]["nproc"] >= 1
    assert "| 5 transitions | per execution |" in (run_dir / "results.md").read_text()
    assert not results_md.exists()
    # When every module runs, the table is also copied to RESULTS.md
    assert runner.main(["--quick", "--out", str(tmp_path / "out2")]) == 0
    assert results_md.read_text().count("| 5 transitions | per execution |") == len(runner.MODULES)


def test_coldstart_has_an_environment_for_every_function() -> None:
    """Figure 1 builds each function's environment from dummy values; a setting added to a
    function's spec must not make the benchmark fail with a missing key."""
    from benchmarks.coldstart import dummy_environment
    from shared.resources import FUNCTIONS, function_environment

    values = dummy_environment()
    for spec in FUNCTIONS:
        env = function_environment(spec, values)
        assert set(spec.env) <= set(env)
