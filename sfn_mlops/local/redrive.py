"""RedriveExecution for the local cloud (moto has none). Placeholder until implemented."""

from __future__ import annotations

from typing import Any


def install(patches: Any) -> None:
    return None
