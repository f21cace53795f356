"""Following an execution as it runs: each state's name, status and duration — a live
table on a terminal (rich), plain lines otherwise (CI logs, pipes)."""

from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass
class Row(StateRun):
    """A line of the progress view: one state visit, or one whole poll loop (its Wait and
    Poll visits collapsed, `polls` of them)."""

    polls: int = 0
    wait: str = ""  # the loop's Wait state


def collapse_polls(runs: list[StateRun]) -> list[Row]:
    """Visible rows: Choice/Pass hidden; each run of Wait -> Poll visits of one loop becomes
    one row named after its poll state, spanning the loop, with the poll count."""
    rows: list[Row] = []
    loop: Row | None = None
    for run in runs:
        if run.type in HIDDEN_TYPES:
            continue
        fields = {f.name: getattr(run, f.name) for f in dataclasses.fields(StateRun)}
        if run.type == "Wait":
            if loop is None or loop.wait != run.name:
                loop = Row(**{**fields, "errors": list(run.errors)}, wait=run.name)
                rows.append(loop)
            loop.exited = None  # waiting again: the loop goes on
            loop.type = "Wait"
            continue
        # the Poll Task after a Wait: one more poll of the loop. Another Task after a Wait
        # (a Restart<Step> wait going back to Start<Step>) is a row of its own.
        if loop is not None and loop.type == "Wait" and run.name.startswith("Poll"):
            loop.name, loop.type = run.name, "Poll"
            loop.polls += 1
            loop.exited, loop.output, loop.closed = run.exited, run.output, run.closed
            loop.attempts += run.attempts
            loop.errors.extend(run.errors)
            continue
        if loop is not None and loop.type == "Wait":  # a Wait no poll followed: it is over
            loop.exited = run.entered
        loop = None
        rows.append(Row(**fields))
    return rows


def row_note(row: Row) -> str:
    """What a row says besides status and duration: a poll loop's count, else the visit's
    retries, redrive round and repeated run (history.note)."""
    if not row.polls:
        return note(row)
    parts = [f"{row.polls} poll{'s' if row.polls != 1 else ''}"]
    if row.redrive:
        parts.append(f"redrive {row.redrive}")
    return ", ".join(parts)


def waiting_hint(rows: list[Row], arn: str) -> str | None:
    """While the run waits at the manual approval (promotion: manual): what a person runs."""
    from sfn_mlops.promotion import APPROVAL_STATE

    if rows and rows[-1].name == APPROVAL_STATE and rows[-1].exited is None:
        name = arn.rsplit(":", 1)[-1]
        return (
            f"waiting for a person: sfn-mlops approve {name} [--reason ...] "
            f"or sfn-mlops reject {name} --reason ..."
        )
    return None


def _line(run: Row) -> str:
    secs = f"{run.seconds:6.2f}s" if run.seconds is not None else "      -"
    extra = f"  ({row_note(run)})" if row_note(run) else ""
    if run.errors and run.status in ("caught", "failed"):
        error, cause = run.errors[-1]
        extra += f"  {error}: {pretty_cause(cause, 160)}"
    return f"{run.name:<26} {run.status:<10} {secs}{extra}"


class PlainView:
    """One line per finished row; a poll loop's line when the loop is over (a later state
    started, or the execution ended)."""

    def __init__(self, out: Any = None) -> None:
        self.out = out or sys.stdout
        self._printed: dict[str, int] = {}
        self._last: tuple[str, list[Row]] | None = None
        self._hinted: set[str] = set()

    def start(self, title: str) -> None:
        print(title, file=self.out, flush=True)

    def _print(self, key: str, rows: list[Row]) -> None:
        for row in rows[self._printed.get(key, 0) :]:
            print(f"  [{_MARK.get(row.status, '?'):>4}] {_line(row)}", file=self.out, flush=True)
        self._printed[key] = self._printed.get(key, 0) + len(rows[self._printed.get(key, 0) :])

    def update(self, key: str, runs: list[StateRun]) -> None:
        rows = collapse_polls(runs)
        done = 0
        for i, row in enumerate(rows):
            if (row.exited is None and not row.closed) or (row.polls and i == len(rows) - 1):
                break  # still running, or a poll loop that may poll again
            done = i + 1
        self._print(key, rows[:done])
        self._last = (key, rows)
        hint = waiting_hint(rows, key)
        if hint and key not in self._hinted:  # once: the wait can last for hours
            self._hinted.add(key)
            print(f"  [wait] {rows[-1].name:<26} {hint}", file=self.out, flush=True)

    def stop(self) -> None:
        """The execution ended: its last rows are final."""
        if self._last is not None:
            key, rows = self._last
            self._print(key, [r for r in rows if r.exited is not None or r.closed])
            self._last = None


class RichView:
    """A live table: the current execution's states, the running one at the bottom."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console()
        self._live = Live(console=self.console, refresh_per_second=8, transient=False)
        self._title = ""
        self._runs: list[Row] = []
        self._hint: str | None = None
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
            secs = run.seconds if run.seconds is not None else now - run.entered.timestamp()
            text = f"{row_note(run)} " if row_note(run) else ""
            if run is self._runs[-1] and self._hint:
                text += self._hint
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
        self._runs = collapse_polls(runs)
        self._hint = waiting_hint(self._runs, key)
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
