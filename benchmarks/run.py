"""Run the benchmarks, write the results: ``python -m benchmarks.run [--quick] [--only NAME...]``.

Each module (``benchmarks/<name>.py``, exposing ``run(quick) -> list[row]``) runs in its own
child process, so one module's moto state, environment, patches, servers or crash cannot
touch the next, and a hang is bounded by a timeout. A module that fails becomes an error row
in the table; the run goes on.

Writes ``bench-results/<timestamp>/results.json`` (machine, rows, per-module wall time and
errors) and ``results.md`` (the table); a full run (no ``--only``) also copies the table to
``benchmarks/RESULTS.md``, the committed latest table the README links to.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"

#: name -> (figure label, timeout in seconds for the full run; quick runs get the same bound)
MODULES: dict[str, tuple[str, int]] = {
    "coldstart": ("1 cold start", 300),
    "orchestration": ("2 orchestration", 600),
    "serving": ("3 serving", 300),
    "inference_lambda": ("4 inference Lambda", 300),
    "transitions": ("5 transitions", 300),
    "training_scale": ("6 scale", 900),  # + 1 vs 2 hosts and a resumed Spot job at 1M
    "load": ("7 load", 600),
}


# --- the machine ------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    mem_gb = None
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "memory_gb": mem_gb,
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "git": _git_head(),
    }


def _git_head() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            check=False,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# --- running the modules ----------------------------------------------------------------------


def error_row(name: str, message: str) -> dict[str, Any]:
    label = MODULES.get(name, (name, 0))[0]
    return {
        "figure": label,
        "subject": f"{name}: ERROR",
        "value": None,
        "baseline_name": "",
        "baseline": None,
        "ratio": None,
        "unit": "",
        "goal": "runs",
        "met": False,
        "note": message,
        "error": True,
    }


def run_module(name: str, quick: bool, timeout: float) -> tuple[list[dict[str, Any]], str | None]:
    """Run benchmarks.<name>.run(quick) in a child process; (rows, error or None)."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        out = Path(tmp) / "rows.json"
        log = Path(tmp) / "log.txt"
        cmd = [sys.executable, "-m", "benchmarks.run", "--child", name, "--rows-out", str(out)]
        if quick:
            cmd.append("--quick")
        with log.open("wb") as sink:
            proc = subprocess.Popen(  # its own group: a timeout kills its servers too
                cmd, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                return [], f"timed out after {timeout:.0f} s; last output: {_tail(log)}"
        reported = json.loads(out.read_text()) if out.exists() else None
        if isinstance(reported, dict) and "error" in reported:
            return [], str(reported["error"])
        if code != 0 or reported is None:
            return [], f"exit status {code}: {_tail(log)}"
        rows = reported
        if not isinstance(rows, list) or not rows:
            return [], "run() returned no rows"
        return rows, None


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    import signal

    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, lines: int = 6, chars: int = 600) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])[-chars:]


def _child(name: str, quick: bool, rows_out: Path) -> int:
    import importlib

    try:
        module = importlib.import_module(f"benchmarks.{name}")
        rows = module.run(quick=quick)
    except BaseException as exc:  # reported by the parent as this module's error row
        import traceback

        traceback.print_exc()
        error = f"{type(exc).__name__}: {exc}"
        rows_out.write_text(json.dumps({"error": error[:2000]}))
        return 1
    rows_out.write_text(json.dumps(rows, default=_jsonable))
    return 0


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


# --- the table --------------------------------------------------------------------------------


def fmt(value: Any, unit: str = "") -> str:
    """A number with its unit, readable: seconds as s/ms/µs, others to 4 significant digits."""
    if value is None:
        return "—"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "—"
    if unit == "s":
        if abs(v) >= 1:
            return f"{v:.2f} s"
        if abs(v) >= 1e-3:
            return f"{v * 1e3:.3g} ms"
        return f"{v * 1e6:.3g} µs"
    if unit == "USD":
        return f"${v:.6f}" if abs(v) < 0.01 else f"${v:.4f}"
    text = f"{v:.4g}" if abs(v) < 1e6 else f"{v:,.0f}"
    return f"{text} {unit}".strip()


def _ratio(row: dict[str, Any]) -> str:
    r = row.get("ratio")
    if r is None or (isinstance(r, float) and math.isnan(r)):
        return "—"
    return f"{float(r):.3g}×"


def _met(row: dict[str, Any]) -> str:
    if row.get("met") is None:
        return ""
    return "✓" if row["met"] else "✗"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    m = meta["machine"]
    judged = [r for r in rows if r.get("met") is not None]
    met = sum(1 for r in judged if r["met"])
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `{meta['command']}` on {meta['date']} (git {m.get('git') or '?'}; "
        f"{'quick' if meta['quick'] else 'full'} run, {meta['seconds']:.0f} s).",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gb']} GB memory, "
        f"Python {m['python']}, {m['platform']}.",
        "",
        "How to read it: each row is one figure. *value* is the median of *reps* repetitions "
        "(its min–max in the last column); *baseline* is the reference measured in the same "
        "run, on the same machine, interleaved with the value where possible (these machines "
        "are noisy, so absolute times drift: compare ratios, not times across runs). "
        "*ratio* = value ÷ baseline. *goal* is the target from issue 6; *met* says whether "
        "this run reached it (blank: informational). Notes [n] below the table say what "
        "exactly was measured.",
        "",
        f"Goals met: {met} of {len(judged)}.",
        "",
        "| figure | subject | value | baseline | ratio | goal | met | value min–max | reps |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for row in rows:
        unit = str(row.get("unit", ""))
        subject = str(row.get("subject", ""))
        if row.get("note"):
            notes.append(str(row["note"]))
            subject += f" [{len(notes)}]"
        spread = ""
        if "min" in row and "max" in row:
            spread = f"{fmt(row['min'], unit)} – {fmt(row['max'], unit)}"
        baseline = fmt(row.get("baseline"), unit)
        if row.get("baseline_name"):
            baseline = f"{row['baseline_name']}: {baseline}"
        cells = [
            str(row.get("figure", "")),
            subject,
            fmt(row.get("value"), unit),
            baseline,
            _ratio(row),
            str(row.get("goal", "")),
            _met(row),
            spread,
            str(row.get("reps", "")),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if notes:
        lines += ["", "Notes:", ""]
        lines += [f"{i}. {_cell(n)}" for i, n in enumerate(notes, 1)]
    modules = meta.get("modules", {})
    if modules:
        lines += [
            "",
            "Module wall times: "
            + ", ".join(
                f"{name} {info['seconds']:.0f} s" + (" (error)" if info.get("error") else "")
                for name, info in modules.items()
            )
            + ".",
        ]
    return "\n".join(lines) + "\n"


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer reps, smaller data")
    parser.add_argument(
        "--only", nargs="+", choices=list(MODULES), metavar="NAME", help=" ".join(MODULES)
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench-results", help="results root")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--rows-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        code = _child(args.child, args.quick, args.rows_out)
        # The rows are written: exit without the interpreter's teardown (as `sfn-mlops local
        # run` does). After figure 2's two local clouds the teardown hung once with the
        # main thread in logging's module lock (a handler's weakref callback), so the
        # parent's timeout discarded rows that were already measured.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    names = args.only or list(MODULES)
    started = time.monotonic()
    now = dt.datetime.now(dt.UTC)
    rows: list[dict[str, Any]] = []
    modules: dict[str, dict[str, Any]] = {}
    for name in names:
        print(f"[bench] {name} ...", flush=True)
        t0 = time.monotonic()
        got, error = run_module(name, args.quick, MODULES[name][1])
        seconds = time.monotonic() - t0
        modules[name] = {"seconds": seconds, "error": error, "rows": len(got)}
        if error:
            print(f"[bench] {name} FAILED after {seconds:.0f} s: {error}", flush=True)
            got = [error_row(name, error)]
        else:
            print(f"[bench] {name}: {len(got)} rows in {seconds:.0f} s", flush=True)
        rows.extend(got)
    command = "python -m benchmarks.run" + (" --quick" if args.quick else "")
    if args.only:
        command += " --only " + " ".join(args.only)
    meta = {
        "command": command,
        "date": now.strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "seconds": time.monotonic() - started,
        "machine": machine(),
        "modules": modules,
    }
    out_dir = args.out / now.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(
        json.dumps({**meta, "rows": rows}, indent=2, default=_jsonable)
    )
    table = markdown(rows, meta)
    (out_dir / "results.md").write_text(table)
    if not args.only:
        RESULTS_MD.write_text(table)
    print(table)
    print(
        f"[bench] wrote {out_dir}/results.json and results.md"
        + ("" if args.only else f"; table copied to {RESULTS_MD}")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
