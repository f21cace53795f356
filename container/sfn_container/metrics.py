"""Model quality metrics in numpy, each with a bootstrap standard deviation.

Every metric is computed with per-row weights, so a bootstrap resample is just a vector of
counts (no copy of the data) and the ROC/AUC reuses one sort of the scores. Names match
the pipeline's objective names (shared.models: auc accuracy f1 precision recall logloss |
rmse mae r2) and the keys of SageMaker's Model Quality report.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

CLASSIFICATION = ("auc", "accuracy", "precision", "recall", "f1", "logloss")
REGRESSION = ("rmse", "mae", "mse", "r2")
_EPS = 1e-15
_CURVE_POINTS = 201
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz


def _div(a: float, b: float) -> float:
    return a / b if b else math.nan


class Classification:
    """Binary classification scores ``p`` (probability of class 1) against labels ``y``."""

    def __init__(self, y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> None:
        self.y = y.astype(np.float64)
        self.p = p.astype(np.float64)
        self.threshold = threshold
        self.order = np.argsort(-self.p, kind="stable")
        sorted_p = self.p[self.order]
        # index of the last row of each group of equal scores (ties share one ROC point)
        self.group_ends = np.flatnonzero(np.diff(sorted_p, append=-np.inf))
        self.thresholds = sorted_p[self.group_ends]
        self.predicted = (self.p >= threshold).astype(np.float64)
        clipped = np.clip(self.p, _EPS, 1 - _EPS)
        self.row_loss = -(self.y * np.log(clipped) + (1 - self.y) * np.log(1 - clipped))

    def roc(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        wy = (w * self.y)[self.order]
        wn = (w * (1 - self.y))[self.order]
        tps = np.concatenate([[0.0], np.cumsum(wy)[self.group_ends]])
        fps = np.concatenate([[0.0], np.cumsum(wn)[self.group_ends]])
        negatives, positives = fps[-1], tps[-1]
        fpr = fps / negatives if negatives else np.full_like(fps, np.nan)
        tpr = tps / positives if positives else np.full_like(tps, np.nan)
        return fpr, tpr

    def compute(self, w: np.ndarray) -> dict[str, float]:
        fpr, tpr = self.roc(w)
        tp = float(np.sum(w * self.y * self.predicted))
        fp = float(np.sum(w * (1 - self.y) * self.predicted))
        fn = float(np.sum(w * self.y * (1 - self.predicted)))
        tn = float(np.sum(w * (1 - self.y) * (1 - self.predicted)))
        precision = _div(tp, tp + fp)
        recall = _div(tp, tp + fn)
        return {
            "auc": float(_trapezoid(tpr, fpr)),
            "accuracy": _div(tp + tn, tp + tn + fp + fn),
            "precision": precision,
            "recall": recall,
            "f1": _div(2 * tp, 2 * tp + fp + fn),
            "logloss": _div(float(np.sum(w * self.row_loss)), float(np.sum(w))),
            "true_positive_rate": recall,
            "true_negative_rate": _div(tn, tn + fp),
            "false_positive_rate": _div(fp, fp + tn),
            "false_negative_rate": _div(fn, fn + tp),
        }

    def confusion_matrix(self) -> dict[str, dict[str, int]]:
        y = self.y.astype(bool)
        pred = self.predicted.astype(bool)
        return {
            "0": {"0": int(np.sum(~y & ~pred)), "1": int(np.sum(~y & pred))},
            "1": {"0": int(np.sum(y & ~pred)), "1": int(np.sum(y & pred))},
        }

    def plot(self) -> dict[str, Any]:
        fpr, tpr = self.roc(np.ones_like(self.y))
        thresholds = np.concatenate([[np.inf], self.thresholds])
        keep = _thin(len(fpr))
        # precision-recall from the same cumulative counts (point 0, no row predicted
        # positive, has no precision: it is left out)
        positives, negatives = float(np.sum(self.y)), float(np.sum(1 - self.y))
        tps, fps = tpr[1:] * positives, fpr[1:] * negatives
        precision = np.divide(tps, tps + fps, out=np.full_like(tps, np.nan), where=tps + fps > 0)
        pr_keep = _thin(len(precision))
        return {
            "pr_curve": {
                "recalls": _floats(tpr[1:][pr_keep]),
                "precisions": _floats(precision[pr_keep]),
            },
            "roc_curve": {
                "false_positive_rates": _floats(fpr[keep]),
                "true_positive_rates": _floats(tpr[keep]),
                "thresholds": _floats(thresholds[keep]),
            },
        }


class Regression:
    def __init__(self, y: np.ndarray, p: np.ndarray) -> None:
        self.y = y.astype(np.float64)
        self.p = p.astype(np.float64)
        self.err = self.p - self.y

    def compute(self, w: np.ndarray) -> dict[str, float]:
        total = float(np.sum(w))
        mse = float(np.sum(w * self.err**2)) / total
        mean = float(np.sum(w * self.y)) / total
        ss_tot = float(np.sum(w * (self.y - mean) ** 2))
        return {
            "rmse": math.sqrt(mse),
            "mae": float(np.sum(w * np.abs(self.err))) / total,
            "mse": mse,
            "r2": 1 - mse * total / ss_tot if ss_tot else math.nan,
        }

    def plot(self) -> dict[str, Any]:
        n = len(self.y)
        keep = np.unique(np.linspace(0, n - 1, min(n, 500)).astype(np.int64))
        counts, edges = np.histogram(self.err, bins=30)
        return {
            "residuals": {
                "actual": _floats(self.y[keep]),
                "predicted": _floats(self.p[keep]),
                "histogram": {"counts": counts.tolist(), "bin_edges": _floats(edges)},
            }
        }


def _thin(n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, _CURVE_POINTS)).astype(np.int64))


def _floats(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in values.tolist()]


def _clean(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def evaluate(
    problem_type: str, y: np.ndarray, p: np.ndarray, resamples: int = 30, seed: int = 0
) -> dict[str, Any]:
    """Point estimates, bootstrap standard deviations, Model Quality section and plots."""
    scorer: Classification | Regression
    scorer = Classification(y, p) if problem_type == "binary_classification" else Regression(y, p)
    n = len(y)
    point = scorer.compute(np.ones(n))
    rng = np.random.default_rng(seed)
    draws = [
        scorer.compute(np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64))
        for _ in range(resamples)
    ]
    section: dict[str, Any] = {}
    for name, value in point.items():
        samples = np.array([d[name] for d in draws], dtype=np.float64)
        samples = samples[np.isfinite(samples)]
        std = float(np.std(samples, ddof=1)) if samples.size > 1 else math.nan
        section[name] = {"value": _clean(value), "standard_deviation": _clean(std)}
    names = CLASSIFICATION if isinstance(scorer, Classification) else REGRESSION
    key = "binary_classification_metrics"
    if isinstance(scorer, Classification):
        section["confusion_matrix"] = scorer.confusion_matrix()
    else:
        key = "regression_metrics"
    return {
        key: section,
        "metrics": {name: _clean(point[name]) for name in names},
        "plot": scorer.plot(),
    }
