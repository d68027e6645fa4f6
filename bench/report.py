"""The table printed at the end of a run and the JSON written beside it (the same figures)."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.core import Row


def machine() -> dict[str, Any]:
    """What the figures were measured on (absolute times only mean something here)."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_mib"] = int(line.split()[1]) // 1024
                break
    except OSError:
        pass
    with contextlib.suppress(OSError):
        info["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return info


COUNT_UNITS = ("503s",)  # whole numbers


def _figure(value: float, unit: str) -> str:
    if unit in COUNT_UNITS:
        return f"{value:.0f}"
    if unit in ("MiB", "%"):
        return f"{value:.1f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(rows: Sequence[Row]) -> str:
    """A GitHub-flavoured Markdown table: readable in a terminal, pasteable into the README."""
    header = ("section", "measure", "ours", "baseline", "ratio", "added", "target", "ok")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        added = float(row.added or 0.0)
        sign = "+" if added >= 0 else ""
        lines.append("| " + " | ".join((
            row.section, row.name, f"{_figure(row.ours, row.unit)} {row.unit}",
            f"{_figure(row.baseline, row.unit)} {row.unit}", f"{row.ratio:.2f}x",
            f"{sign}{_figure(added, row.unit)} {row.unit}", row.target.text,
            "yes" if row.ok else "**no**",
        )) + " |")
    return "\n".join(lines)


def document(rows: Sequence[Row], *, options: dict[str, Any], started: float,
             duration: float, notes: Sequence[str]) -> dict[str, Any]:
    return {
        "machine": machine(),
        "started_unix": round(started, 3),
        "duration_seconds": round(duration, 1),
        "options": options,
        "argv": sys.argv[1:],
        "notes": list(notes),
        "all_ok": all(row.ok for row in rows),
        "rows": [row.as_json() for row in rows],
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
