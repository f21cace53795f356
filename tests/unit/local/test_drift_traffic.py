"""The drift scenario's shifted traffic: rows of the data set, its first numeric features
moved by SHIFT_SD standard deviations, the rest untouched, as CSV requests the model server
(and the drift check) read by their header."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from sfn_mlops.local import scenarios


def _data(path: Path) -> Path:
    rng = np.random.default_rng(0)
    lines = ["plan,a,b,c,target"] + [
        f"{rng.choice(['x', 'y'])},{rng.normal(10, 2):.4f},{rng.normal():.4f},{rng.normal():.4f},"
        f"{i % 2}"
        for i in range(400)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_first_numeric_features_move_and_the_rest_do_not(tmp_path: Path) -> None:
    # GIVEN a data set with a text column first
    data = _data(tmp_path / "data.csv")
    # WHEN 95 rows of shifted traffic are made
    names, bodies = scenarios.shifted_requests(data, "target", 95, seed=1)
    # THEN the first two numeric features are the shifted ones, in requests of 10 rows with
    # the features' header (no target)
    assert names == ["a", "b"]
    assert len(bodies) == 10
    rows = [row for body in bodies for row in list(csv.reader(io.StringIO(body)))[1:]]
    assert {body.splitlines()[0] for body in bodies} == {"plan,a,b,c"}
    assert len(rows) == 95
    with data.open() as fh:
        source = list(csv.DictReader(fh))
    for j, name in ((1, "a"), (2, "b"), (3, "c")):
        base = np.array([float(r[name]) for r in source])
        sent = np.array([float(r[j]) for r in rows])
        moved = (sent.mean() - base.mean()) / base.std()
        if name == "c":
            assert abs(moved) < 0.4  # unchanged: sampling noise only
        else:
            assert moved == pytest.approx(scenarios.SHIFT_SD, abs=0.4)
    assert {r[0] for r in rows} <= {"x", "y"}  # text values as they were


def test_a_data_set_without_numeric_features_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "text.csv"
    data.write_text("plan,target\nx,1\ny,0\n")
    with pytest.raises(ValueError, match=r"text\.csv has no numeric feature to shift"):
        scenarios.shifted_requests(data, "target", 10)
