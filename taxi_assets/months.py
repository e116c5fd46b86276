"""Month keys (``2024-01``) and their arithmetic, in plain Python.

The monthly partitions use the TLC file names' ``YYYY-MM`` keys. Inside assets the month
window comes from the partition (``context.partition_time_window`` or the partitions
definition); these helpers serve the plain layers (the CLI, the ML core, the sensors' probing)
that hold a key and need its neighbours.
"""

from __future__ import annotations

import re
from datetime import datetime

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse(month: str) -> tuple[int, int]:
    """``"2024-02"`` -> ``(2024, 2)``; a clear error for anything else."""
    match = _MONTH.match(month or "")
    if not match:
        raise ValueError(f"month must be YYYY-MM (e.g. 2024-01), got {month!r}")
    return int(match.group(1)), int(match.group(2))


def _index(month: str) -> int:
    year, mon = parse(month)
    return year * 12 + mon - 1


def _key(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def add(month: str, count: int) -> str:
    """The month ``count`` months after ``month`` (negative: before)."""
    return _key(_index(month) + count)


def previous_months(month: str, count: int) -> list[str]:
    """The ``count`` months before ``month``, oldest first (``2024-02``, 1 -> ``[2024-01]``)."""
    index = _index(month)
    return [_key(i) for i in range(index - count, index)]


def between(first: str, last: str) -> list[str]:
    """Every month from ``first`` to ``last``, both included (empty when ``last < first``)."""
    return [_key(i) for i in range(_index(first), _index(last) + 1)]


def start_of(month: str) -> datetime:
    """Midnight of the first day of ``month`` (naive, like the TLC timestamps)."""
    year, mon = parse(month)
    return datetime(year, mon, 1)
