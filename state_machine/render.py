"""`python -m state_machine.render` (`make asl`): writes the committed artefacts.

- state_machine/asl.json: the definition, `${...}` placeholders left for CDK to substitute
- state_machine/diagram.md: its Mermaid diagram (the README embeds it)
- state_machine/input.schema.json: the start-execution payload schema

Rendering is offline and deterministic: no AWS region, credentials or calls. `--check`
renders in memory and exits 1 if a committed file differs (what a stale checkout fails).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ASL_FILE = HERE / "asl.json"
DIAGRAM_FILE = HERE / "diagram.md"
SCHEMA_FILE = HERE / "input.schema.json"


def to_json(document: Mapping[str, Any]) -> str:
    """The one JSON formatting of every rendered file (stable, diff-friendly)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render() -> dict[Path, str]:
    """Every artefact's path and text, rendered in memory."""
    from state_machine.definition import definition
    from state_machine.diagram import diagram_markdown
    from state_machine.schema import input_schema

    asl = definition()
    return {
        ASL_FILE: to_json(asl),
        DIAGRAM_FILE: diagram_markdown(asl),
        SCHEMA_FILE: to_json(input_schema()),
    }


def stale(rendered: Mapping[Path, str]) -> list[Path]:
    """Files on disk that differ from (or are missing for) `rendered`."""
    return [
        path
        for path, text in rendered.items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m state_machine.render", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args(argv)
    rendered = render()
    if args.check:
        out_of_date = stale(rendered)
        for path in out_of_date:
            print(f"out of date: {path.relative_to(HERE.parent)} (run `make asl`)")
        return 1 if out_of_date else 0
    for path, text in rendered.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
