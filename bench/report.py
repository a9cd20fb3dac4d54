"""Tables for the benchmarks: a plain aligned table for the terminal, Markdown for results."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys

__all__ = ["markdown", "provenance", "render"]


def provenance(script: str, argv=None, load_note: str = "") -> tuple[str, str, str]:
    """``(command, machine, date)`` of a benchmark run, for its results file: the command as
    the user types it, the processor, cores, Python, platform and load average at the end
    (``load_note`` follows it), and the UTC date."""
    command = f"python bench/{script}" + (" " + shlex.join(argv or sys.argv[1:])).rstrip()
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"Python {platform.python_version()}, {platform.platform()}, load average "
               f"{os.getloadavg()[0]:.1f} at the end{load_note}")
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return command, machine, date


def render(rows, columns, title: str | None = None) -> str:
    """An aligned plain-text table of ``rows`` (dicts) over ``columns``."""
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    lines = [title] if title else []
    lines += ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
              "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths))
              for r in rows]
    return "\n".join(lines)


def markdown(rows, columns) -> str:
    """The same table in Markdown."""
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(out)
