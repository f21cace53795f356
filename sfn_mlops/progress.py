"""Following an execution as it runs: each state's name, status and duration — a live
table on a terminal (rich), plain lines otherwise (CI logs, pipes)."""

from __future__ import annotations

import sys
import time
from typing import Any

from sfn_mlops.history import StateRun, note, pretty_cause, state_runs

HIDDEN_TYPES = {"Choice", "Pass"}
_MARK = {"succeeded": "ok", "running": "..", "failed": "FAIL", "caught": "ERR"}


def get_history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def _line(run: StateRun) -> str:
    secs = f"{run.seconds:6.2f}s" if run.seconds is not None else "      -"
    extra = f"  ({note(run)})" if note(run) else ""
    if run.errors and run.status in ("caught", "failed"):
        error, cause = run.errors[-1]
        extra += f"  {error}: {pretty_cause(cause, 160)}"
    return f"{run.name:<26} {run.status:<10} {secs}{extra}"


class PlainView:
    def __init__(self, out: Any = None) -> None:
        self.out = out or sys.stdout
        self._printed: dict[str, int] = {}

    def start(self, title: str) -> None:
        print(title, file=self.out, flush=True)

    def update(self, key: str, runs: list[StateRun]) -> None:
        done = [
            r for r in runs if r.type not in HIDDEN_TYPES and (r.exited is not None or r.closed)
        ]
        for run in done[self._printed.get(key, 0) :]:
            print(f"  [{_MARK.get(run.status, '?'):>4}] {_line(run)}", file=self.out, flush=True)
        self._printed[key] = len(done)

    def stop(self) -> None:
        pass


class RichView:
    """A live table: the current execution's states, the running one at the bottom."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console()
        self._live = Live(console=self.console, refresh_per_second=8, transient=False)
        self._title = ""
        self._runs: list[StateRun] = []
        self._started = False

    def start(self, title: str) -> None:
        if self._started:
            self.stop()
        self._title = title
        self._runs = []
        self._live.start()
        self._started = True

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(title=self._title, title_justify="left", expand=False)
        table.add_column("state")
        table.add_column("status")
        table.add_column("duration", justify="right")
        table.add_column("note", overflow="fold", max_width=70)
        style = {"succeeded": "green", "running": "yellow", "failed": "red", "caught": "red"}
        now = time.time()
        for run in self._runs:
            if run.type in HIDDEN_TYPES:
                continue
            secs = run.seconds if run.seconds is not None else now - run.entered.timestamp()
            text = f"{note(run)} " if note(run) else ""
            if run.errors and run.status in ("caught", "failed"):
                text += f"{run.errors[-1][0]}: {pretty_cause(run.errors[-1][1], 200)}"
            table.add_row(
                run.name,
                f"[{style.get(run.status, 'white')}]{run.status}[/]",
                f"{secs:.2f}s",
                text,
            )
        return table

    def update(self, key: str, runs: list[StateRun]) -> None:
        # collapse poll loops: keep the last visit of Wait/Poll states per name
        self._runs = runs
        self._live.update(self._table(), refresh=True)

    def stop(self) -> None:
        if self._started:
            self._live.stop()
            self._started = False


def make_view(plain: bool | None = None) -> PlainView | RichView:
    if plain is None:
        plain = not sys.stdout.isatty()
    return PlainView() if plain else RichView()


def follow(
    sfn: Any, arn: str, view: PlainView | RichView, timeout: float = 900.0, interval: float = 0.25
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Show the execution's states until it ends; returns (describe, history)."""
    deadline = time.monotonic() + timeout
    while True:
        desc = sfn.describe_execution(executionArn=arn)
        events = get_history(sfn, arn)
        view.update(arn, state_runs(events))
        if desc["status"] != "RUNNING":
            return desc, events
        if time.monotonic() > deadline:
            raise TimeoutError(f"execution {desc['name']} still RUNNING after {timeout:.0f}s")
        time.sleep(interval)
