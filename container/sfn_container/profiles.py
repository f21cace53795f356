"""Merging the data profiles of a sharded preprocessing job into the one-host profile.

Each host of a multi-host preprocessing job profiles only its shard. Its ``profile.json``
therefore carries, under ``partial``, the quantities that merge *exactly*: per column the
count, missing count, mean and M2 (sum of squared deviations), min and max; rows per split
(and dropped); positives per split; and any category counts (``categories``: column ->
value -> count). :func:`merge` combines them with Chan et al.'s pairwise update, so counts,
min/max and category counts are identical to a one-host run and mean/std agree to
floating-point rounding (the order of additions differs). Plain Python: no numpy needed to
read or merge profiles.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

COLUMN_KEYS = ("count", "missing", "mean", "m2", "min", "max")


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def partial(
    stats: Any, header: list[str], rows: Any, positives: Any, splits: tuple[str, ...]
) -> dict[str, Any]:
    """The mergeable part of one host's profile (`stats`: preprocess's column moments)."""
    return {
        "columns": {
            name: {
                "count": int(stats.count[i]),
                "missing": int(stats.missing[i]),
                "mean": float(stats.mean[i]),
                "m2": float(stats.m2[i]),
                "min": _num(float(stats.minimum[i])),
                "max": _num(float(stats.maximum[i])),
            }
            for i, name in enumerate(header)
        },
        "rows": {name: int(rows[i]) for i, name in enumerate(splits)}
        | {"dropped_missing_target": int(rows[len(splits)])},
        "positives": {name: int(positives[i]) for i, name in enumerate(splits)},
        "categories": {},
    }


def _merge_column(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    n = a["count"] + b["count"]
    if b["count"] == 0:
        mean, m2 = a["mean"], a["m2"]
    elif a["count"] == 0:
        mean, m2 = b["mean"], b["m2"]
    else:
        delta = b["mean"] - a["mean"]
        mean = a["mean"] + delta * b["count"] / n
        m2 = a["m2"] + b["m2"] + delta * delta * a["count"] * b["count"] / n
    lows = [v for v in (a["min"], b["min"]) if v is not None]
    highs = [v for v in (a["max"], b["max"]) if v is not None]
    return {
        "count": n,
        "missing": a["missing"] + b["missing"],
        "mean": mean,
        "m2": m2,
        "min": min(lows) if lows else None,
        "max": max(highs) if highs else None,
    }


def _add_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in sorted({*a, *b})}


def merge(host_profiles: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One profile for the whole data set from every host's profile (same shape as a
    one-host profile.json, plus ``hosts``)."""
    parts = sorted(host_profiles, key=lambda p: str(p.get("host")))
    if not parts:
        raise ValueError("no host profiles to merge")
    first = parts[0]
    for other in parts[1:]:
        if other["feature_names"] != first["feature_names"]:
            raise ValueError(
                f"host {other.get('host')} profiled other columns than host {first.get('host')}"
            )
    columns = first["partial"]["columns"]
    rows = first["partial"]["rows"]
    positives = first["partial"]["positives"]
    categories = first["partial"].get("categories", {})
    files = dict(first["files"])
    for other in parts[1:]:
        p = other["partial"]
        columns = {name: _merge_column(columns[name], p["columns"][name]) for name in columns}
        rows = _add_counts(rows, p["rows"])
        positives = _add_counts(positives, p["positives"])
        categories = {
            col: _add_counts(categories.get(col, {}), p.get("categories", {}).get(col, {}))
            for col in sorted({*categories, *p.get("categories", {})})
        }
        files.update(other["files"])
    splits = list(positives)
    merged: dict[str, Any] = {
        key: first[key] for key in ("target_column", "problem_type", "feature_names", "split")
    }
    merged["rows"] = {
        "total": sum(rows[s] for s in splits),
        **{s: rows[s] for s in splits},
        "dropped_missing_target": rows["dropped_missing_target"],
    }
    merged["files"] = dict(sorted(files.items()))
    merged["columns"] = {
        name: {
            "count": c["count"],
            "missing": c["missing"],
            "mean": c["mean"] if c["count"] else None,
            "std": _num(math.sqrt(c["m2"] / (c["count"] - 1))) if c["count"] > 1 else None,
            "min": c["min"],
            "max": c["max"],
        }
        for name, c in columns.items()
    }
    if "class_balance" in first:
        merged["class_balance"] = {s: {"rows": rows[s], "positive": positives[s]} for s in splits}
    if any(categories.values()):
        merged["categories"] = categories
    merged["hosts"] = [p.get("host") for p in parts]
    return merged


def merge_dir(directory: Path) -> dict[str, Any]:
    """Merge every ``profile.json`` under `directory` (a downloaded profile prefix); a lone
    one-host profile is returned as it is."""
    found = sorted(directory.rglob("profile.json"))
    if not found:
        raise FileNotFoundError(f"no profile.json under {directory}")
    loaded = [json.loads(p.read_text(encoding="utf-8")) for p in found]
    if len(loaded) == 1 and "partial" not in loaded[0]:
        return loaded[0]
    return merge(loaded)
