"""The measured results the demo shows: a small JSON file (`assets/results.json`) that
`python -m engine evaluate ... --results FILE` and `python -m engine.bench --results FILE`
write, so the About panel never scrapes the README and never drifts from the commands.

Layout (every number comes with the command that produced it):
    {"quality": {"<benchmark>": {"command": str, "models": {"<label>": {"model": str,
                 "metrics": {"<measure>": {"<metric>": float}}}}}},
     "speed": {"command": str, "machine": str, "rows": [{"stage": str, "ms": float,
               "ratio": float, "note": str}], "other": [{"what": str, "result": str}]}}
"""
from __future__ import annotations

import json
from pathlib import Path

from . import ASSETS
from .files import atomic_write

RESULTS = ASSETS / "results.json"


def load_results(path: str | Path | None = None) -> dict:
    """The results file as a dict ({} when it is missing or unreadable)."""
    try:
        data = json.loads(Path(path or RESULTS).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record_results(path: str | Path, keys: list[str], value: object) -> None:
    """Set data[keys[0]][keys[1]]... = value in the file (created if missing), atomically."""
    data = load_results(path)
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
