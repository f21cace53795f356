"""Sharded preprocessing: where each host's split files go, and which part a row lands in.

A processing job with several hosts gets the raw objects ``ShardedByS3Key`` (each host a
disjoint subset of whole objects). Each host preprocesses its objects exactly as one host
would: a row's split is a hash of its values (:func:`sfn_container.preprocess.row_hash`),
never of the host or of the number of hosts, so the union of every host's train split is
the one-host train split, row for row.

Each host writes its own files under its own prefix, so no host overwrites another's
output when SageMaker uploads every host's ``/opt/ml/processing/output/<name>`` to the same
S3 prefix::

    train/<host>/train-00000.csv   (+ its binary copy, see sfn_container.binsplit)
    train/<host>/train-00001.csv   ... one per part
    profile/<host>/profile.json    (with the raw moments a merge needs: sfn_container.profiles)
    sample/<host>/sample.csv

A single host writing one part keeps the one-file layout (``train/train.csv``).

Parts: a training job with N hosts reads the train and validation channels
``ShardedByS3Key`` too, so each channel needs at least N objects of CSV. The pipeline asks
preprocess for ``SPLIT_PARTS`` = the training instance count; a row's part is another slice
of the same hash (the low bits; the split uses the high ones), so parts are balanced and
deterministic. A part's CSV and its binary copy sort next to each other, so a host that
receives a contiguous run of keys gets whole parts; a host that gets a CSV without its copy
parses the CSV (same values).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def part_of(hashes: np.ndarray, parts: int) -> np.ndarray:
    """The part (0..parts-1) of each row, from the low bits of its split hash."""
    if parts == 1:
        return np.zeros(hashes.shape[0], dtype=np.int64)
    return (hashes % np.uint64(parts)).astype(np.int64)


def per_host(host: str | None, parts: int) -> bool:
    return host is not None or parts > 1


def split_paths(
    output_dir: Path, splits: tuple[str, ...], parts: int, host: str | None
) -> list[Path]:
    """The CSV of every (split, part), indexed ``split * parts + part``."""
    if not per_host(host, parts):
        return [output_dir / name / f"{name}.csv" for name in splits]
    owner = host or "algo-1"
    return [
        output_dir / name / owner / f"{name}-{part:05d}.csv"
        for name in splits
        for part in range(parts)
    ]


def output_file(output_dir: Path, name: str, filename: str, host: str | None) -> Path:
    """An output that is one file per host (profile, sample)."""
    return output_dir / name / host / filename if host else output_dir / name / filename
