"""The report page: `ReportData` -> one self-contained HTML file (Jinja2 template, styles
inline, figures as inline SVG; no script, no external resource)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

from sfn_mlops.report import plots
from sfn_mlops.report.collect import ReportData

TEMPLATE = Path(__file__).with_name("template.html.j2")


def console_links(data: ReportData) -> dict[str, str]:
    """AWS console pages of what the execution touched (empty for a local cloud)."""
    if not data.on_aws:
        return {}
    r = data.region
    base = f"https://{r}.console.aws.amazon.com"
    links = {
        "execution": f"{base}/states/home?region={r}#/v2/executions/details/"
        f"{data.describe['executionArn']}",
        "log groups": f"{base}/cloudwatch/home?region={r}#logsV2:log-groups",
    }
    for job in data.jobs:
        page = "jobs" if job.kind == "training" else "processing-jobs"
        links[job.name] = f"{base}/sagemaker/home?region={r}#/{page}/{job.name}"
    endpoint = (data.state.get("deploy") or {}).get("endpoint_name")
    if endpoint:
        links[f"endpoint {endpoint}"] = f"{base}/sagemaker/home?region={r}#/endpoints/{endpoint}"
    return links


def _metric_rows(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per metric: challenger and champion value ± bootstrap std, and the delta."""
    key = (
        "binary_classification_metrics"
        if evaluation.get("problem_type") == "binary_classification"
        else "regression_metrics"
    )
    chall = (evaluation.get("challenger") or {}).get(key) or {}
    champ = (evaluation.get("champion") or {}).get(key) or {}
    rows = []
    for name, value in chall.items():
        if not isinstance(value, dict) or "value" not in value:
            continue  # the confusion matrix is drawn, not tabled
        other = champ.get(name) or {}
        a, b = value.get("value"), other.get("value")
        rows.append(
            {
                "name": name,
                "challenger": a,
                "challenger_std": value.get("standard_deviation"),
                "champion": b,
                "champion_std": other.get("standard_deviation"),
                "delta": a - b if isinstance(a, float) and isinstance(b, float) else None,
            }
        )
    return rows


def _figures(data: ReportData) -> list[dict[str, str]]:
    """(title, svg) of every model-quality figure the evaluation has data for."""
    ev = data.evaluation
    if not ev:
        return []
    figs: list[dict[str, str]] = []
    shown = ev.get("plots") or {}
    if ev.get("problem_type") == "binary_classification":
        key = "binary_classification_metrics"
        auc = {
            role: (((ev.get(role) or {}).get(key) or {}).get("auc") or {}).get("value")
            for role in ("challenger", "champion")
            if ev.get(role)
        }
        figs.append({"id": "roc", "svg": plots.roc_curve(shown, auc)})
        if any("pr_curve" in (shown.get(r) or {}) for r in ("challenger", "champion")):
            figs.append({"id": "pr", "svg": plots.pr_curve(shown)})
        for role in ("challenger", "champion"):
            matrix = ((ev.get(role) or {}).get(key) or {}).get("confusion_matrix")
            if matrix:
                figs.append(
                    {"id": f"confusion-{role}", "svg": plots.confusion_matrix(matrix, role)}
                )
    else:
        figs.append({"id": "predicted-vs-actual", "svg": plots.predicted_vs_actual(shown)})
        figs.append({"id": "residuals", "svg": plots.residuals(shown)})
    importances = {
        role: ((ev.get(role) or {}).get("model") or {}).get("feature_importance") or {}
        for role in ("challenger", "champion")
    }
    if importances["challenger"]:
        figs.append({"id": "feature-importance", "svg": plots.feature_importance(importances)})
    return figs


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.{digits}g}" if abs(value) >= 1e4 else f"{value:.{digits}f}"
    return str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def render(data: ReportData) -> str:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["fmt"] = _fmt
    env.filters["duration"] = _duration
    template = env.from_string(TEMPLATE.read_text())
    started = data.describe["startDate"]
    stopped = data.describe.get("stopDate")
    outcomes = data.outcomes()
    runs = data.runs
    state_rows = []
    for o in outcomes.values():
        if o.visits and o.type not in ("Choice", "Pass"):
            state_rows.append(o)
    return template.render(
        d=data,
        config=data.state.get("config") or {},
        started=started,
        stopped=stopped,
        seconds=((stopped or dt.datetime.now(tz=dt.UTC)) - started).total_seconds(),
        failure=data.failure,
        gate=data.gate,
        metrics=_metric_rows(data.evaluation) if data.evaluation else [],
        figures=_figures(data),
        graph=plots.workflow_graph(data.definition, outcomes),
        timeline=plots.timeline(runs, data.jobs, started, data.redrives) if runs else "",
        states=state_rows,
        links=console_links(data),
        colors=plots.COLORS,
        generated=dt.datetime.now(tz=dt.UTC),
    )


def write_report(data: ReportData, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data), encoding="utf-8")
    return out


INDEX = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sfn-mlops run {{ title }}</title>
<style>
  body { font: 14px/1.45 system-ui, sans-serif; margin: 24px 28px; color: #1d2329; }
  table { border-collapse: collapse; } th, td { padding: 6px 12px; border-bottom: 1px solid #dde2e6;
  text-align: left; } th { color: #5f6b76; }
  .SUCCEEDED { color: #2e9d4f; font-weight: 600; }
  .FAILED, .TIMED_OUT, .ABORTED { color: #c0392b; font-weight: 600; }
  pre { background: #f6f8fa; padding: 12px; border-radius: 6px; overflow-x: auto; }
</style></head><body>
<h1>sfn-mlops local run {{ title }}</h1>
<table id="executions">
<tr><th>execution</th><th>trigger</th><th>status</th><th>time</th><th>gate</th><th>report</th></tr>
{% for e in entries %}
<tr><td>{{ e.name }}</td><td>{{ e.trigger }}</td><td class="{{ e.status }}">{{ e.status }}
{% if e.failure %}<br><small>at {{ e.failure[0] }}: {{ e.failure[1] }}</small>{% endif %}</td>
<td>{{ e.seconds | duration }}</td>
<td>{% if e.gate %}{{ e.gate.metric }} {{ e.gate.challenger | fmt }} vs {{ e.gate.champion | fmt
 if e.gate.champion is not none else "(none)" }} → {{ "deploy" if e.gate.deploy else "no deploy" }}
{% else %}–{% endif %}</td>
<td>{% if e.report %}<a href="{{ e.report }}">report.html</a>{% else %}–{% endif %}</td></tr>
{% endfor %}
</table>
<h2>Summary</h2>
<pre>{{ summary }}</pre>
</body></html>
"""


def write_index(out: Path, entries: list[dict[str, Any]], summary: str) -> Path:
    """The run's index.html: its executions, each linking to its report, and the summary."""
    import jinja2

    env = jinja2.Environment(autoescape=True)
    env.filters["fmt"] = _fmt
    env.filters["duration"] = _duration
    html = env.from_string(INDEX).render(title=out.parent.name, entries=entries, summary=summary)
    out.write_text(html, encoding="utf-8")
    return out


DRIFT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>drift check {{ r.endpoint_name }}</title>
<style>
  body { font: 14px/1.45 system-ui, sans-serif; margin: 24px 28px; color: #1d2329; }
  table { border-collapse: collapse; } th, td { padding: 4px 10px; border-bottom: 1px solid #dde2e6;
  text-align: right; } th { color: #5f6b76; } td:first-child, th:first-child { text-align: left; }
  .drifted td { color: #c0392b; font-weight: 600; } .plot { max-width: 100%; height: auto; }
</style></head><body>
<h1>Drift check of {{ r.endpoint_name }}: {{ r.status }}</h1>
<p>Window {{ r.window.start }} .. {{ r.window.end }}: {{ r.records }} captured rows
({{ r.skipped_requests }} requests not decodable). A feature drifted at PSI &ge;
{{ r.thresholds.psi | pval }} or a test's p &lt; {{ r.thresholds.ks_p_value_per_feature | pval }}
(Kolmogorov-Smirnov for numeric features, chi-square for categorical ones; the level
{{ r.thresholds.ks_p_value | pval }} over {{ r.features | length }} features).
{% if r.drifted_features %}Drifted: <strong>{{ r.drifted_features | join(", ") }}</strong>.
{% endif %}</p>
{{ figure | safe }}
<table id="features">
<tr><th>feature</th><th>type</th><th>PSI</th><th>test statistic</th><th>p-value</th>
<th>mean</th><th>baseline mean</th><th>missing</th><th>drifted</th></tr>
{% for name, f in r.features.items() %}
<tr class="{{ 'drifted' if f.drifted else '' }}"><td>{{ name }}</td><td>{{ f.type }}</td>
<td>{{ f.psi | fmt }}</td>
<td>{{ (f.ks_statistic if f.type == 'numeric' else f.chi2_statistic) | fmt }}</td>
<td>{{ (f.ks_p_value if f.type == 'numeric' else f.chi2_p_value) | pval }}</td>
<td>{{ f.mean | fmt }}</td><td>{{ f.baseline_mean | fmt }}</td>
<td>{{ f.missing_fraction | fmt }}</td><td>{{ "yes" if f.drifted else "no" }}</td></tr>
{% endfor %}
</table>
</body></html>
"""


def write_drift_report(report: dict[str, Any], out: Path) -> Path:
    """drift.html of a drift check's drift.json (container/sfn_container/drift.py): its
    verdict, the PSI per feature as a figure, and every feature's statistics."""
    import jinja2

    env = jinja2.Environment(autoescape=True)
    env.filters["fmt"] = _fmt
    env.filters["pval"] = lambda v: "–" if v is None else f"{v:.2g}"
    figure = ""
    if report.get("features"):
        figure = plots.drift_psi(report["features"], float(report["thresholds"]["psi"]))
    html = env.from_string(DRIFT).render(r=report, figure=figure)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out
