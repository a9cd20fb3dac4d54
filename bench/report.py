"""Tables for the benchmarks: a plain aligned table for the terminal, Markdown for results."""

from __future__ import annotations

__all__ = ["markdown", "render"]


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
