"""Fixtures for the container's tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def opt_ml(tmp_path: Path) -> Path:
    root = tmp_path / "opt_ml"
    root.mkdir()
    return root
