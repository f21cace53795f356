"""Multi-host container behaviour: sharded preprocessing, merged profiles, checkpoints and
resume, distributed training over XGBoost's collective (two real worker processes)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from container_helpers import REPO
from sfn_container import checkpoints, profiles, tabular
from sfn_container.data import write_synthetic
from sfn_container.distributed import Cluster
from sfn_container.errors import ConfigError, EmptyInputError
from sfn_container.model import load_model
from sfn_container.paths import OptMl
from sfn_container.preprocess import PreprocessConfig, preprocess
from sfn_container.train import TrainConfig, train

SPLITS = ("train", "validation", "test")


def _raw_objects(directory: Path, rows: int, objects: int, categorical: bool = False) -> list[Path]:
    """One synthetic data set cut into `objects` CSV files (each with the header), as a
    data prefix holding several S3 objects; `categorical` adds a text column."""
    whole = write_synthetic(directory / "whole", rows, 6, seed=3)
    header, *lines = whole.read_text().splitlines(keepends=True)
    shutil.rmtree(whole.parent)
    if categorical:  # a text column whose values (and one rare value) vary by object
        header = header.rstrip("\n") + ",colour\n"
        palette = ["red", "green", "blue, dark"]
        lines = [
            line.rstrip("\n") + f',"{f"rare-{i}" if 7 <= i < 17 else palette[(i * 7919) % 3]}"\n'
            for i, line in enumerate(lines)
        ]
    paths = []
    for i, chunk in enumerate(np.array_split(np.array(lines, dtype=object), objects)):
        path = directory / f"part-{i:02d}.csv"
        path.write_text(header + "".join(chunk))
        paths.append(path)
    return paths


def _rows_of(output: Path, split: str) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for path in sorted((output / split).rglob("*.parquet")):
        table = tabular.read_table(path)
        table = table.select(sorted(table.column_names))
        rows.extend(zip(*(c.to_pylist() for c in table.columns), strict=True))
    return sorted(rows, key=repr)


def _shard(files: list[Path], hosts: int, root: Path) -> list[Path]:
    """ShardedByS3Key: each host a disjoint subset of whole objects."""
    dirs = []
    for h in range(hosts):
        d = root / f"algo-{h + 1}"
        d.mkdir(parents=True)
        for path in files[h::hosts]:
            shutil.copy(path, d / path.name)
        dirs.append(d)
    return dirs


@pytest.mark.parametrize(("hosts", "parts"), [(2, 1), (3, 2)])
def test_sharded_preprocessing_keeps_the_one_host_split_and_merges_the_profile(
    tmp_path: Path, hosts: int, parts: int
) -> None:
    # Given a data set of 5 objects, preprocessed on one host
    files = _raw_objects(tmp_path / "raw", 3000, 5, categorical=True)
    config = PreprocessConfig(parts=parts)
    one = preprocess(tmp_path / "raw", tmp_path / "one", PreprocessConfig())
    # When `hosts` hosts each preprocess their shard into the same output tree
    for h, shard in enumerate(_shard(files, hosts, tmp_path / "shards")):
        preprocess(shard, tmp_path / "many", config, host=f"algo-{h + 1}")
    # Then every split holds exactly the one-host rows, from per-host files
    for split in SPLITS:
        assert _rows_of(tmp_path / "many", split) == _rows_of(tmp_path / "one", split)
        owners = {p.parent.name for p in (tmp_path / "many" / split).rglob("*.parquet")}
        assert owners == {f"algo-{h + 1}" for h in range(hosts)}
    assert len(list((tmp_path / "many" / "train").rglob("*.parquet"))) == hosts * parts
    # And the merged profile is the one-host profile: counts, min/max, class balance exact
    merged = profiles.merge_dir(tmp_path / "many" / "profile")
    assert merged["rows"] == one["rows"]
    assert merged["class_balance"] == one["class_balance"]
    assert merged["hosts"] == [f"algo-{h + 1}" for h in range(hosts)]
    assert merged["columns"]["colour"] == one["columns"]["colour"]  # category counts exact
    assert one["columns"]["colour"]["distinct"] == 13
    for name, column in one["columns"].items():
        if column["type"] == "categorical":
            continue
        got = merged["columns"][name]
        assert {k: got[k] for k in ("count", "missing", "min", "max")} == {
            k: column[k] for k in ("count", "missing", "min", "max")
        }
        assert got["mean"] == pytest.approx(column["mean"], rel=1e-12, abs=1e-12)
        assert got["std"] == pytest.approx(column["std"], rel=1e-12)


def test_a_host_without_raw_objects_says_so(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyInputError, match="at least as many data files as processing"):
        preprocess(tmp_path / "empty", tmp_path / "out", PreprocessConfig(), host="algo-3")


def test_resourceconfig_names_the_hosts_and_addresses_come_from_the_override(
    tmp_path: Path,
) -> None:
    path = tmp_path / "resourceconfig.json"
    assert Cluster.from_file(path).size == 1  # no file: one host
    path.write_text(json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}))
    env = {"SFN_HOST_ADDRESSES": json.dumps({"algo-1": "127.0.0.1"})}
    cluster = Cluster.from_file(path, env)
    assert (cluster.rank, cluster.size, cluster.leader) == (1, 2, "algo-1")
    assert not cluster.is_leader
    assert cluster.address("algo-1") == "127.0.0.1"
    path.write_text(json.dumps({"current_host": "algo-9", "hosts": ["algo-1"]}))
    with pytest.raises(ConfigError, match="current_host 'algo-9' is not one of hosts"):
        Cluster.from_file(path, env)


# --- checkpoints --------------------------------------------------------------------------


def _stage_channels(opt_ml: Path, output: Path) -> None:
    for channel in ("train", "validation"):
        shutil.copytree(output / channel, opt_ml / "input" / "data" / channel)


HYPERPARAMETERS = {
    "num_round": "30",
    "max_depth": "3",
    "eta": "0.3",
    "checkpoint_interval": "10",
}


def test_checkpoints_every_k_rounds_and_a_restart_resumes_from_the_latest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given preprocessed splits and a job with /opt/ml/checkpoints (CheckpointConfig set)
    raw = tmp_path / "raw"
    _raw_objects(raw, 2000, 1)
    preprocess(raw, tmp_path / "splits", PreprocessConfig())
    full = OptMl(tmp_path / "full")
    _stage_channels(full.root, tmp_path / "splits")
    full.checkpoints.mkdir(parents=True)
    config = TrainConfig.from_hyperparameters(HYPERPARAMETERS)
    # When it trains uninterrupted
    train(full, config)
    # Then it left checkpoints after rounds 10 and 20 (not the last round: the model is that)
    assert checkpoints.available(full.checkpoints) == [10, 20]
    capsys.readouterr()

    # Given a restarted job whose checkpoint prefix holds round 20 (it was interrupted later)
    resumed = OptMl(tmp_path / "resumed")
    _stage_channels(resumed.root, tmp_path / "splits")
    resumed.checkpoints.mkdir(parents=True)
    shutil.copy(checkpoints.checkpoint_path(full.checkpoints, 20), resumed.checkpoints)
    # When it trains again
    metadata = train(resumed, config)
    # Then it boosted only the 10 missing rounds, and the model is the uninterrupted one
    log = capsys.readouterr().out
    assert "checkpoints: resuming after round 20 of 30" in log
    assert len(re.findall(r"^\[\d+\]", log, re.MULTILINE)) == 10  # one line per round
    assert metadata["resumed_from_round"] == 20
    a, b = load_model(full.model_dir), load_model(resumed.model_dir)
    assert b.booster.num_boosted_rounds() == 30
    x = np.random.default_rng(0).normal(size=(200, a.num_features)).astype(np.float32)
    np.testing.assert_allclose(a.predict(x), b.predict(x), rtol=1e-6)


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path: Path) -> None:
    import xgboost as xgb

    x = np.random.default_rng(1).normal(size=(300, 4))
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(x, x[:, 0] > 0), 5)
    checkpoints.save(booster, tmp_path, 5)
    checkpoints.checkpoint_path(tmp_path, 10).write_bytes(b"cut off")
    loaded, rounds = checkpoints.latest(tmp_path)
    assert rounds == 5
    assert loaded.num_boosted_rounds() == 5


def test_checkpoint_interval_is_validated() -> None:
    with pytest.raises(ConfigError, match="checkpoint_interval must be a whole number"):
        TrainConfig.from_hyperparameters({"checkpoint_interval": "-1"})


def test_eval_period_scores_fewer_rounds_and_trains_the_same_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the same splits and hyperparameters, validation scored every round or every 10th
    raw = tmp_path / "raw"
    _raw_objects(raw, 2000, 1)
    preprocess(raw, tmp_path / "splits", PreprocessConfig())
    models, logs, metrics = [], [], []
    for period in ("1", "10"):
        opt_ml = OptMl(tmp_path / f"period-{period}")
        _stage_channels(opt_ml.root, tmp_path / "splits")
        hps = {**HYPERPARAMETERS, "num_round": "25", "eval_period": period}
        metrics.append(train(opt_ml, TrainConfig.from_hyperparameters(hps))["validation_metrics"])
        logs.append(capsys.readouterr().out)
        models.append(load_model(opt_ml.model_dir))
    # Then every round is logged, scored on rounds 0, 10, 20 and the last (24) only
    scored = [int(r) for r in re.findall(r"^\[(\d+)\]\tvalidation-auc:", logs[1], re.MULTILINE)]
    assert scored == [0, 10, 20, 24]
    # (each with whitespace after the index: the training poll's progress metric needs it)
    assert len(re.findall(r"^\[\d+\]\t", logs[1], re.MULTILINE)) == 25
    assert len(re.findall(r"^\[\d+\]\tvalidation-auc:", logs[0], re.MULTILINE)) == 25
    # And the final metrics and the model are the same as with every round scored
    assert metrics[1] == pytest.approx(metrics[0], rel=1e-6)
    assert set(metrics[1]) == {"validation-auc", "validation-logloss"}
    assert re.search(r"^validation-auc: [0-9.]+$", logs[1], re.MULTILINE)
    a, b = models
    assert a.booster.save_raw("json") == b.booster.save_raw("json")
    x = np.random.default_rng(0).normal(size=(200, a.num_features)).astype(np.float32)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


def test_early_stopping_scores_every_round_whatever_eval_period_says() -> None:
    config = TrainConfig.from_hyperparameters({"eval_period": "10", "early_stopping_rounds": "5"})
    assert config.eval_period == 10
    assert config.effective_eval_period == 1
    assert TrainConfig.from_hyperparameters({}).effective_eval_period == 10


@pytest.mark.parametrize("value", ["0", "-3", "2.5", "often"])
def test_eval_period_is_validated(value: str) -> None:
    with pytest.raises(ConfigError, match="eval_period must be a whole number of rounds >= 1"):
        TrainConfig.from_hyperparameters({"eval_period": value})


# --- distributed training: two real workers on loopback ---------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_hosts_train_one_model_over_the_collective_and_only_the_first_saves(
    tmp_path: Path,
) -> None:
    # Given splits written in 2 parts (SPLIT_PARTS=2) and two hosts, each with one part,
    # with a text column whose rare values are in one part only
    raw = tmp_path / "raw"
    _raw_objects(raw, 4000, 1, categorical=True)
    preprocess(raw, tmp_path / "splits", PreprocessConfig(parts=2))
    hosts = ["algo-1", "algo-2"]
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'container'}{os.pathsep}{REPO}",
        "SFN_HOST_ADDRESSES": json.dumps(dict.fromkeys(hosts, "127.0.0.1")),
        "SFN_TRACKER_PORT": str(_free_port()),
        "SFN_TRACKER_TIMEOUT": "60",
        "SM_NUM_CPUS": "1",
    }
    procs = []
    for i, host in enumerate(hosts):
        root = tmp_path / host
        for channel in ("train", "validation"):
            part = tmp_path / "splits" / channel / "algo-1"
            dest = root / "input" / "data" / channel
            dest.mkdir(parents=True)
            for path in part.glob(f"{channel}-{i:05d}.*"):
                shutil.copy(path, dest)
        config = root / "input" / "config"
        config.mkdir(parents=True)
        (config / "hyperparameters.json").write_text(json.dumps({"num_round": "20"}))
        (config / "resourceconfig.json").write_text(
            json.dumps({"current_host": host, "hosts": hosts})
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "sfn_container", "train"],
                env={**env, "OPT_ML": str(root)},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    # When both workers run
    try:
        outputs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    # Then both succeed as ranks 0 and 1 of one collective
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert "rank 0 of 2" in outputs[0]
    assert "rank 1 of 2" in outputs[1]
    # And only the first host wrote a model, trained on both shards' rows
    assert not (tmp_path / "algo-2" / "model").exists() or not any(
        (tmp_path / "algo-2" / "model").iterdir()
    )
    model = load_model(tmp_path / "algo-1" / "model")
    profile = json.loads((tmp_path / "splits" / "profile" / "profile.json").read_text())
    assert model.metadata["train_rows"] == profile["rows"]["train"]
    assert model.metadata["hosts"] == 2
    assert model.metadata["validation_metrics"]["validation-auc"] > 0.85
    # And the hosts agreed on the categories: the whole train split's, not one shard's
    parts = [
        set(tabular.read_table(p).column("colour").to_pylist())
        for p in sorted((tmp_path / "splits" / "train" / "algo-1").glob("*.parquet"))
    ]
    assert parts[0] != parts[1]
    assert model.categories["colour"] == sorted(parts[0] | parts[1])
    # And both workers hold the same (allreduced) validation metric at the end
    final = [re.findall(r"validation-auc: ([0-9.]+)", out) for out in outputs]
    assert final[0] == final[1]
    assert len(final[0]) == 1
