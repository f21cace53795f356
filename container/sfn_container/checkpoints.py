"""Checkpoints for Spot training: save every K rounds, resume from the latest.

SageMaker syncs ``/opt/ml/checkpoints`` with the job's ``CheckpointConfig.S3Uri``: files the
container writes there are uploaded while it runs, and when a Spot interruption restarts
the job, the prefix is copied back before the container starts again. So a restarted
``train`` finds the checkpoints of the interrupted run and continues from the latest one:
the rounds already boosted are not boosted again (at most ``interval - 1`` are repeated,
those after the last checkpoint).

Files: ``checkpoint-<rounds:06d>.ubj``, the booster after that many rounds (XGBoost's own
format). A checkpoint is written to a temporary name and renamed, so a file with the
final name is whole; the newest ``KEEP`` are kept. Checkpointing is on when the directory
exists (SageMaker creates it only for a job with CheckpointConfig) and the interval is at
least 1.

Multi-host: only the first host writes (all hosts share the one S3 prefix and hold the
same model after every round); on resume every host loads the same round, the newest one
all hosts have (agreed by an allreduce), so the workers start identical.

Early stopping: its "rounds without improvement" counter is not part of a checkpoint, so a
resumed run counts afresh from the resumed round.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from sfn_container.errors import ConfigError

PATTERN = re.compile(r"^checkpoint-(\d{6})\.ubj$")
KEEP = 2


def checkpoint_path(directory: Path, rounds: int) -> Path:
    return directory / f"checkpoint-{rounds:06d}.ubj"


def available(directory: Path) -> list[int]:
    """Rounds of the checkpoints in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    found = (PATTERN.match(p.name) for p in directory.iterdir() if p.is_file())
    return sorted(int(m.group(1)) for m in found if m)


def save(booster: Any, directory: Path, rounds: int) -> Path:
    """Write the booster after `rounds` rounds (atomically) and drop older checkpoints."""
    final = checkpoint_path(directory, rounds)
    partial = final.with_name(f".partial-{final.name}")  # not matched by PATTERN
    booster.save_model(str(partial))
    os.replace(partial, final)
    for old in available(directory)[:-KEEP]:
        checkpoint_path(directory, old).unlink(missing_ok=True)
    return final


def _agreed(rounds: int, distributed: bool) -> int:
    """The smallest of every worker's `rounds` (each worker's own value on one host)."""
    if not distributed:
        return rounds
    import numpy as np
    import xgboost as xgb

    mine = np.array([rounds], dtype=np.int64)
    return int(xgb.collective.allreduce(mine, xgb.collective.Op.MIN)[0])


def latest(directory: Path, distributed: bool = False) -> tuple[Any, int]:
    """The booster of the newest usable checkpoint and its round count, or (None, 0).

    A file that does not load (cut off by an interruption before the rename could only
    happen with a damaged upload) is skipped for the one before it."""
    import xgboost as xgb

    loaded: dict[int, Any] = {}
    for rounds in reversed(available(directory)):
        booster = xgb.Booster()
        try:
            booster.load_model(str(checkpoint_path(directory, rounds)))
        except xgb.core.XGBoostError as exc:
            print(f"checkpoints: skipping round {rounds}: {exc}", flush=True)
            continue
        loaded[rounds] = booster
        break
    newest = max(loaded, default=0)
    chosen = _agreed(newest, distributed)
    if chosen == 0:
        return None, 0
    if chosen not in loaded:
        if chosen not in available(directory):
            raise ConfigError(
                f"checkpoints: the hosts hold different checkpoints (this host's newest is "
                f"round {newest}, another's is round {chosen}); {directory} is synced from "
                "one S3 prefix, so this means an incomplete download"
            )
        booster = xgb.Booster()
        booster.load_model(str(checkpoint_path(directory, chosen)))
        loaded[chosen] = booster
    return loaded[chosen], chosen


def callback(directory: Path, interval: int, total_rounds: int) -> Any:
    """An XGBoost training callback writing a checkpoint after every `interval`-th round
    (the round numbers count from the first round of the first run, resumed or not)."""
    import xgboost as xgb

    class _Checkpoint(xgb.callback.TrainingCallback):  # type: ignore[misc]
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            rounds = epoch + 1  # xgb.train numbers a resumed run's epochs on from the model's
            if rounds % interval == 0 and rounds < total_rounds:
                save(model, directory, rounds)
                print(f"checkpoints: saved round {rounds}", flush=True)
            return False

    return _Checkpoint()
