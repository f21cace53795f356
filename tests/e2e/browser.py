"""Render a report in a real browser: headless Chromium (Debian's package, which
`make test` installs as root) driven by playwright-core (npm, no browser download) through
tests/browser/render.mjs. Without Chromium or playwright-core the test SKIPS, naming what
is missing and how to get it (pytest's -ra prints the reason): never silently."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
SCRIPT = ROOT / "tests" / "browser" / "render.mjs"


def render(report: Path, screenshot: Path) -> dict[str, Any]:
    """What the page showed: console messages, page errors, blocked network requests, and
    each `svg.plot` figure's rendered size and shape count. Saves a full-page PNG."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"no browser: {CHROMIUM} is missing. `make test` installs Debian's chromium with "
            "apt-get when run as root; install it (apt-get install chromium) or set CHROMIUM"
        )
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        pytest.skip("playwright-core is not installed: run `make node_modules/.stamp` (npm ci)")
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH (it drives the browser through playwright-core)")
    done = subprocess.run(
        [node, str(SCRIPT), str(report), str(screenshot)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def assert_drawn(shown: dict[str, Any], expected_plots: set[str]) -> None:
    """Every expected figure drawn with a real size and shapes; no errors, no network."""
    assert shown["console"] == [], shown["console"]
    assert shown["errors"] == [], shown["errors"]
    assert shown["requests"] == [], shown["requests"]  # self-contained: nothing fetched
    drawn = {p["id"]: p for p in shown["plots"]}
    assert expected_plots <= set(drawn), (expected_plots - set(drawn), sorted(drawn))
    for plot in drawn.values():
        assert plot["width"] > 150, plot
        assert plot["height"] > 80, plot
        assert plot["shapes"] >= 5, plot
        assert plot["texts"] >= 2, plot  # axis labels, titles, state names
