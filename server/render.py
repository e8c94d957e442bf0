"""Small text helpers shared by the tools' short renderings and the CLI's terminal tables.

Everything here takes plain values and returns strings, so both the MCP side (results.py) and the
terminal side (tables.py) format times, durations and long text the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

ELLIPSIS = "…"


def when(moment: datetime | None) -> str:
    """`2025-11-04 18:29:12Z`: second precision is what a person scans for."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    if ms < 10_000:
        return f"{ms} ms"
    if ms < 600_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms / 60_000:.1f} min"


def clip(text: str | None, limit: int) -> str:
    """`text` on one line, cut to `limit` characters with a visible mark."""
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + ELLIPSIS


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    return f"{count:,} {noun if count == 1 else plural_form or noun + 's'}"


def counted(total: int, exact: bool) -> str:
    """A total as the text shows it: `1,000`, or `at least 1,000` where counting stopped."""
    return f"{total:,}" if exact else f"at least {total:,}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A left-aligned, space-padded table; the last column is not padded (it is usually the long one)."""
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
    lines = [_line(headers, widths), _line(["-" * w for w in widths], widths)]
    lines.extend(_line(row, widths) for row in rows)
    return "\n".join(lines)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = [cell.ljust(width) for cell, width in zip(cells[:-1], widths, strict=False)]
    return "  ".join([*padded, cells[-1]]).rstrip()
