"""Fixtures shared by the model server tests."""

from __future__ import annotations

import pytest
from sfn_container import csvdata
from sfn_container.data import write_dataset
from sfn_container.model import load_model
from sfn_container.paths import OptMl
from sfn_container.preprocess import PreprocessConfig, preprocess
from sfn_container.train import TrainConfig, train


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """breast_cancer -> preprocess -> train (in process), as the pipeline would."""
    root = tmp_path_factory.mktemp("serve")
    opt_ml = OptMl(root / "opt_ml")
    write_dataset("breast_cancer", root / "raw")
    preprocess(root / "raw", root / "splits", PreprocessConfig())
    for channel in ("train", "validation"):
        (opt_ml.channel(channel)).mkdir(parents=True)
        (root / "splits" / channel / f"{channel}.csv").rename(
            opt_ml.channel(channel) / f"{channel}.csv"
        )
    train(opt_ml, TrainConfig.from_hyperparameters({"num_round": "20", "max_depth": "3"}))
    test_csv = root / "splits" / "test" / "test.csv"
    header = csvdata.read_header(test_csv)
    x, _ = csvdata.read_matrix([test_csv], header, "target")
    return {
        "opt_ml": opt_ml.root,
        "model": load_model(opt_ml.model_dir),
        "x": x,
        "sample": (root / "splits" / "sample" / "sample.csv").read_bytes(),
    }
