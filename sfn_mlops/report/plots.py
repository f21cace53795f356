"""The report's figures, drawn by matplotlib into inline SVG.

Why matplotlib SVG (and not Vega-Lite/altair or plotly): the page must open with no
network. Altair writes HTML that loads vega from a CDN unless `vl-convert-python` (a
~30 MB wheel bundling a JS runtime) inlines it; plotly offline inlines ~4 MB of plotly.js
into every report. matplotlib (~20 MB of wheels with its dependencies; numpy is already
installed) draws static SVG: no script at all to load or fail in the browser, each figure
a few tens of KB. What is lost is hover interactivity.
"""

from __future__ import annotations

import datetime as dt
import io
from collections import deque
from typing import Any

from sfn_mlops.report.collect import JobRun, StateOutcome

COLORS = {
    "succeeded": "#2e9d4f",
    "recovered": "#e08e0b",  # failed, then succeeded after a redrive
    "failed": "#c0392b",
    "caught": "#c0392b",
    "running": "#f1c40f",
    "not run": "#c8ccd0",
}
CHAMPION, CHALLENGER = "#7f8c8d", "#1f6fb2"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("svg")  # no display, no GUI toolkit
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.fonttype": "none",  # text stays text (selectable, small)
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "svg.hashsalt": "sfn-mlops",  # stable ids: the same data draws the same file
        }
    )
    return plt


def _svg(fig: Any, plot_id: str) -> str:
    plt = _pyplot()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    svg = text[text.index("<svg") :]
    return svg.replace("<svg ", f'<svg class="plot" data-plot="{plot_id}" ', 1)


# --- the workflow graph ---------------------------------------------------------------
def _edges(definition: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(from, to, kind) for kind in next | choice | catch."""
    out: list[tuple[str, str, str]] = []
    for name, spec in definition.get("States", {}).items():
        if spec.get("Next"):
            out.append((name, spec["Next"], "next"))
        for choice in spec.get("Choices", []):
            out.append((name, choice["Next"], "choice"))
        if spec.get("Default"):
            out.append((name, spec["Default"], "choice"))
        for catch in spec.get("Catch", []):
            out.append((name, catch["Next"], "catch"))
    return out


def graph_layout(definition: dict[str, Any]) -> dict[str, tuple[float, int]]:
    """(column, row) per state. Row 0 is the main path: from StartAt along Next, and for a
    Choice its first rule (the way forward; the Default is the loop or the way out). States
    off it hang below the main-path state that leads to them, one row per step (a poll
    loop's Wait and Poll under its Choice); states reached only through a Catch go on a
    last row. (A few lines of code: a graph-layout dependency would not earn its install.)"""
    states = definition.get("States", {})
    spine: list[str] = []
    node = definition.get("StartAt")
    while node in states and node not in spine:
        spine.append(node)
        spec = states[node]
        node = spec.get("Next") or next((c["Next"] for c in spec.get("Choices", [])), None)
    pos: dict[str, tuple[float, int]] = {n: (float(i), 0) for i, n in enumerate(spine)}
    children: dict[str, list[str]] = {n: [] for n in states}
    for a, b, kind in _edges(definition):
        if kind != "catch":
            children[a].append(b)
    taken: set[tuple[float, int]] = set(pos.values())
    queue = deque(spine)
    while queue:
        parent = queue.popleft()
        col, row = pos[parent]
        for child in children.get(parent, []):
            if child in pos:
                continue
            spot = (col, row + 1)
            while spot in taken:
                spot = (spot[0] + 0.5, spot[1])
            pos[child] = spot
            taken.add(spot)
            queue.append(child)
    orphans = [n for n in states if n not in pos]
    bottom = max((r for _, r in pos.values()), default=0) + 1
    last = max((c for c, _ in pos.values()), default=0.0)
    for i, name in enumerate(orphans):
        pos[name] = (max(0.0, last - len(orphans) + 1 + i), bottom)
    return pos


def _wrap(name: str, width: int = 13) -> str:
    """A long CamelCase state name on two lines, split at the capital nearest its middle."""
    if len(name) <= width:
        return name
    caps = [i for i, ch in enumerate(name) if ch.isupper() and 0 < i < len(name)]
    if not caps:
        return name
    cut = min(caps, key=lambda i: abs(i - len(name) / 2))
    return f"{name[:cut]}\n{name[cut:]}"


def workflow_graph(definition: dict[str, Any], outcomes: dict[str, StateOutcome]) -> str:
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    plt = _pyplot()
    pos = graph_layout(definition)
    cols = int(max(c for c, _ in pos.values())) + 1
    rows = max(r for _, r in pos.values()) + 1
    fig, ax = plt.subplots(figsize=(max(8, cols * 1.15), max(2.5, rows * 1.0)))
    ax.set_xlim(-0.6, cols - 0.4)
    ax.set_ylim(rows - 0.5, -0.9)
    ax.axis("off")
    w, h = 0.92, 0.62
    for a, b, kind in _edges(definition):
        if a not in pos or b not in pos:
            continue
        (x1, y1), (x2, y2) = pos[a], pos[b]
        # around the boxes in between: a loop's way back, a skip along the main path
        skip = kind != "catch" and y1 == y2 and abs(x2 - x1) > 1
        back = kind != "catch" and y2 < y1 and x2 == x1
        ax.add_patch(
            FancyArrowPatch(
                (x1, y1),
                (x2, y2),
                arrowstyle="-|>",
                mutation_scale=7,
                shrinkA=14,
                shrinkB=14,
                linewidth=0.7 if kind == "catch" else 1.0,
                linestyle=":" if kind == "catch" else "-",
                color="#c0392b" if kind == "catch" else "#555",
                alpha=0.35 if kind == "catch" else 0.9,
                connectionstyle=f"arc3,rad={0.35 if back else -0.12 if skip else 0.0}",
                zorder=1,
            )
        )
    for name, (x, y) in pos.items():
        o = outcomes.get(name) or StateOutcome(name, "?", "not run")
        box = FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.22"
            if o.type == "Choice"
            else "round,pad=0.02,rounding_size=0.08",
            facecolor=COLORS.get(o.status, "#ddd"),
            edgecolor="#333",
            linewidth=0.6,
            linestyle="--" if o.type == "Choice" else "-",
            zorder=2,
        )
        box.set_gid(f"state-{name}")
        ax.add_patch(box)
        label = _wrap(name)
        note = o.status
        if o.visits > 1:
            note += f" ×{o.visits}"
        dark = o.status in ("succeeded", "failed", "caught", "recovered")
        ink = {"ha": "center", "va": "center", "zorder": 3}
        ax.text(x, y - 0.08, label, fontsize=6, color="white" if dark else "#222",
                fontweight="bold", linespacing=1.0, **ink)  # fmt: skip
        ax.text(x, y + 0.19, note, fontsize=5.6, color="white" if dark else "#333", **ink)
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=c)
        for s, c in COLORS.items()
        if s != "caught"  # same color as failed
    ]
    ax.legend(
        handles,
        [s for s in COLORS if s != "caught"],
        loc="lower left",
        ncol=5,
        fontsize=7,
        frameon=False,
        bbox_to_anchor=(0, -0.12),
    )
    return _svg(fig, "workflow")


# --- the timeline ---------------------------------------------------------------------
def timeline(
    runs: list[Any],
    jobs: list[JobRun],
    started: dt.datetime,
    redrives: list[dt.datetime],
) -> str:
    plt = _pyplot()
    rows: list[str] = []
    bars: dict[str, list[tuple[float, float, str]]] = {}

    def secs(t: dt.datetime) -> float:
        return (t - started).total_seconds()

    end_of_all = secs(max([r.exited or r.entered for r in runs] or [started]))
    for r in runs:
        if r.type in ("Choice", "Pass"):
            continue
        if r.name not in bars:
            rows.append(r.name)
            bars[r.name] = []
        stop = secs(r.exited) if r.exited else end_of_all
        bars[r.name].append((secs(r.entered), max(stop - secs(r.entered), 0.0), r.status))
    for job in jobs:
        if job.start is None:
            continue
        label = f"{job.kind} job ({job.step})"
        end = secs(job.end) if job.end else end_of_all
        rows.append(label)
        status = {"Completed": "succeeded", "Failed": "failed", "Stopped": "failed"}.get(
            job.status, "running"
        )
        bars[label] = [(secs(job.start), max(end - secs(job.start), 0.0), status)]
    fig, ax = plt.subplots(figsize=(10, max(2.0, 0.24 * len(rows) + 0.8)))
    width = max([s + d for b in bars.values() for s, d, _ in b] or [1.0])
    for i, row in enumerate(rows):
        for start, dur, status in bars[row]:
            color = COLORS.get(status, "#999")
            if row.endswith(")") and " job (" in row:
                color = "#6c5ce7" if status == "succeeded" else color
            # a zero-length visit (a Wait ended at once) still shows as a sliver
            ax.barh(i, max(dur, width / 400), left=start, height=0.6, color=color)
    for t in redrives:
        ax.axvline(secs(t), color=COLORS["recovered"], linestyle="--", linewidth=1)
        ax.text(secs(t), -0.8, "redrive", color=COLORS["recovered"], fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the execution started")
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig, "timeline")


# --- model quality --------------------------------------------------------------------
def _finish(fig: Any, ax: Any, plot_id: str, labels: tuple[str, str, str], legend: str) -> str:
    """Axis labels and title (x, y, title), the legend, and the figure as SVG."""
    x, y, title = labels
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.legend(loc=legend, fontsize=8)
    return _svg(fig, plot_id)


def _curves(
    ax: Any, plots: dict[str, Any], key: str, xs: str, ys: str, labels: dict[str, str] | None = None
) -> None:
    """The champion's (dashed) and the challenger's curve `key` from evaluation.json."""
    for role, color in (("champion", CHAMPION), ("challenger", CHALLENGER)):
        curve = ((plots.get(role) or {}).get(key)) or {}
        pts = [
            (x, y)
            for x, y in zip(curve.get(xs, []), curve.get(ys, []), strict=False)
            if x is not None and y is not None
        ]
        if pts:
            x, y = zip(*pts, strict=True)
            ax.plot(
                x,
                y,
                color=color,
                label=(labels or {}).get(role, role),
                linewidth=1.6,
                linestyle="--" if role == "champion" else "-",
            )


def roc_curve(plots: dict[str, Any], auc: dict[str, Any]) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.plot([0, 1], [0, 1], color="#bbb", linewidth=0.8, linestyle=":")
    labels = {
        role: role + (f" (AUC {value:.4f})" if isinstance(value, float) else "")
        for role, value in auc.items()
    }
    _curves(ax, plots, "roc_curve", "false_positive_rates", "true_positive_rates", labels)
    labels = ("false positive rate", "true positive rate", "ROC curve (test split)")
    return _finish(fig, ax, "roc", labels, "lower right")


def pr_curve(plots: dict[str, Any]) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    _curves(ax, plots, "pr_curve", "recalls", "precisions")
    ax.set_ylim(0, 1.02)
    labels = ("recall", "precision", "precision–recall curve (test split)")
    return _finish(fig, ax, "pr", labels, "lower left")


def confusion_matrix(matrix: dict[str, dict[str, int]], role: str) -> str:
    plt = _pyplot()
    cells = [[int(matrix.get(a, {}).get(p, 0)) for p in ("0", "1")] for a in ("0", "1")]
    fig, ax = plt.subplots(figsize=(3.0, 2.8))
    ax.imshow(cells, cmap="Blues")
    top = max(max(r) for r in cells) or 1
    for a in range(2):
        for p in range(2):
            ax.text(
                p,
                a,
                str(cells[a][p]),
                ha="center",
                va="center",
                fontsize=12,
                color="white" if cells[a][p] > top / 2 else "#222",
            )
    ax.set_xticks([0, 1], ["0", "1"])
    ax.set_yticks([0, 1], ["0", "1"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"confusion matrix: {role}")
    return _svg(fig, f"confusion-{role}")


def predicted_vs_actual(plots: dict[str, Any]) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    lo, hi = float("inf"), float("-inf")
    for role, color, marker in (("champion", CHAMPION, "x"), ("challenger", CHALLENGER, "o")):
        res = ((plots.get(role) or {}).get("residuals")) or {}
        pts = [
            (a, p)
            for a, p in zip(res.get("actual", []), res.get("predicted", []), strict=False)
            if None not in (a, p)
        ]
        if pts:
            a, p = zip(*pts, strict=True)
            ax.scatter(a, p, s=10, color=color, marker=marker, alpha=0.7, label=role)
            lo, hi = min(lo, *a, *p), max(hi, *a, *p)
    if lo < hi:
        ax.plot([lo, hi], [lo, hi], color="#bbb", linewidth=0.8, linestyle=":")
    labels = ("actual", "predicted", "predicted vs actual (test split)")
    return _finish(fig, ax, "predicted-vs-actual", labels, "upper left")


def residuals(plots: dict[str, Any]) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    for role, color in (("champion", CHAMPION), ("challenger", CHALLENGER)):
        hist = (((plots.get(role) or {}).get("residuals")) or {}).get("histogram") or {}
        counts, edges = hist.get("counts") or [], hist.get("bin_edges") or []
        if counts and len(edges) == len(counts) + 1:
            ax.stairs(
                counts,
                edges,
                color=color,
                label=role,
                linewidth=1.6,
                fill=role == "challenger",
                alpha=0.45 if role == "challenger" else 1,
            )
    ax.axvline(0, color="#bbb", linewidth=0.8, linestyle=":")
    labels = ("residual (predicted − actual)", "rows", "residuals (test split)")
    return _finish(fig, ax, "residuals", labels, "upper right")


def feature_importance(importances: dict[str, dict[str, float]], top: int = 15) -> str:
    """Total gain per feature, challenger (and champion) side by side, normalised to 1."""
    plt = _pyplot()
    chall = importances.get("challenger") or {}
    names = sorted(chall, key=lambda n: -chall[n])[:top][::-1]
    fig, ax = plt.subplots(figsize=(6.0, max(2.0, 0.26 * len(names) + 0.8)))
    height = 0.4
    for i, (role, color) in enumerate((("champion", CHAMPION), ("challenger", CHALLENGER))):
        values = importances.get(role) or {}
        total = sum(values.values()) or 1.0
        if values:
            ax.barh(
                [k + (i - 0.5) * height for k in range(len(names))],
                [values.get(n, 0.0) / total for n in names],
                height=height,
                color=color,
                label=role,
            )
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("share of total gain")
    ax.set_title(f"feature importance (top {len(names)}, XGBoost total gain)")
    ax.legend(loc="lower right", fontsize=8)
    return _svg(fig, "feature-importance")


def drift_psi(features: dict[str, dict[str, Any]], threshold: float, top: int = 30) -> str:
    """PSI per feature of a drift report (the largest `top`), drifted ones highlighted, with
    the threshold line."""
    plt = _pyplot()
    names = sorted(features, key=lambda n: -(features[n].get("psi") or 0.0))[:top][::-1]
    fig, ax = plt.subplots(figsize=(6.0, max(2.0, 0.22 * len(names) + 0.8)))
    ax.barh(
        range(len(names)),
        [features[n].get("psi") or 0.0 for n in names],
        color=[COLORS["failed"] if features[n].get("drifted") else CHAMPION
               for n in names],
    )  # fmt: skip
    ax.axvline(threshold, color="#1d2329", linestyle="--", linewidth=1, label="PSI threshold")
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("population stability index (PSI)")
    ax.set_title("drift per feature (red: drifted)")
    ax.legend(loc="lower right", fontsize=8)
    return _svg(fig, "drift-psi")
