"""Merging the data profiles of a sharded preprocessing job into the one-host profile.

Each host of a multi-host preprocessing job profiles only its shard. Its ``profile.json``
therefore carries, under ``partial``, the quantities that merge *exactly*: per numeric
column the count, missing count, mean and M2 (sum of squared deviations), min and max; per
categorical column its missing count and every value's count; rows per split (and
dropped); positives per split. :func:`merge` combines them with Chan et al.'s pairwise
update, so counts, min/max and category counts (hence ``distinct`` and ``top``) are
identical to a one-host run and mean/std agree to floating-point rounding (the order of
additions differs). :func:`describe_numeric` / :func:`describe_categorical` are the one
place a column's profile entry is written (preprocess uses them too). Plain Python: no
numpy needed to read or merge profiles.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

TOP_CATEGORIES = 10  # a categorical column's profile lists its most frequent values


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def describe_numeric(
    count: int, missing: int, mean: float, m2: float, low: float | None, high: float | None
) -> dict[str, Any]:
    return {
        "type": "numeric",
        "count": count,
        "missing": missing,
        "mean": _num(mean) if count else None,
        "std": _num(math.sqrt(m2 / (count - 1))) if count > 1 else None,
        "min": None if low is None else _num(low),
        "max": None if high is None else _num(high),
    }


def describe_categorical(counts: Mapping[str, int], missing: int) -> dict[str, Any]:
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_CATEGORIES]
    return {
        "type": "categorical",
        "count": sum(counts.values()),
        "missing": missing,
        "distinct": len(counts),
        "top": dict(top),
    }


def partial(
    stats: Mapping[str, Any], rows: Any, positives: Any, splits: tuple[str, ...]
) -> dict[str, Any]:
    """The mergeable part of one host's profile (`stats`: preprocess's per-column
    NumericStats / TextStats)."""
    columns: dict[str, Any] = {}
    for name, stat in stats.items():
        if hasattr(stat, "counts"):  # TextStats
            columns[name] = {
                "type": "categorical",
                "missing": int(stat.missing),
                "counts": dict(sorted(stat.counts.items())),
            }
        else:
            columns[name] = {
                "type": "numeric",
                "count": int(stat.count),
                "missing": int(stat.missing),
                "mean": float(stat.mean),
                "m2": float(stat.m2),
                "min": _num(float(stat.minimum)),
                "max": _num(float(stat.maximum)),
            }
    return {
        "columns": columns,
        "rows": {name: int(rows[i]) for i, name in enumerate(splits)}
        | {"dropped_missing_target": int(rows[len(splits)])},
        "positives": {name: int(positives[i]) for i, name in enumerate(splits)},
    }


def _merge_numeric(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
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
        "type": "numeric",
        "count": n,
        "missing": a["missing"] + b["missing"],
        "mean": mean,
        "m2": m2,
        "min": min(lows) if lows else None,
        "max": max(highs) if highs else None,
    }


def _merge_column(name: str, a: dict[str, Any], b: dict[str, Any], host: Any) -> dict[str, Any]:
    if a["type"] != b["type"]:
        raise ValueError(
            f"column {name!r} holds text on some hosts and only numbers on host {host}: "
            "its type depends on the shard; make it all numbers or all text in every file"
        )
    if a["type"] == "numeric":
        return _merge_numeric(a, b)
    return {
        "type": "categorical",
        "missing": a["missing"] + b["missing"],
        "counts": _add_counts(a["counts"], b["counts"]),
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
    files = dict(first["files"])
    warnings = list(first.get("warnings", []))
    for other in parts[1:]:
        p = other["partial"]
        columns = {
            name: _merge_column(name, columns[name], p["columns"][name], other.get("host"))
            for name in columns
        }
        rows = _add_counts(rows, p["rows"])
        positives = _add_counts(positives, p["positives"])
        files.update(other["files"])
        warnings.extend(other.get("warnings", []))
    splits = list(positives)
    merged: dict[str, Any] = {
        key: first[key]
        for key in ("target_column", "problem_type", "feature_names", "ignored_columns")
        if key in first
    }
    merged["rows"] = {
        "total": sum(rows[s] for s in splits),
        **{s: rows[s] for s in splits},
        "dropped_missing_target": rows["dropped_missing_target"],
    }
    merged["files"] = dict(sorted(files.items()))
    merged["split"] = first["split"]
    merged["columns"] = {
        name: describe_numeric(c["count"], c["missing"], c["mean"], c["m2"], c["min"], c["max"])
        if c["type"] == "numeric"
        else describe_categorical(c["counts"], c["missing"])
        for name, c in columns.items()
    }
    merged["warnings"] = warnings
    if "class_balance" in first:
        merged["class_balance"] = {s: {"rows": rows[s], "positive": positives[s]} for s in splits}
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
