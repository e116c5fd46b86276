"""Numbers read from environment variables, with one clear message when they are wrong."""

from __future__ import annotations

import os


def env_number(name: str, default: float | None, kind: type = int, minimum: float | None = None, unit: str = ""):
    """``kind(os.environ[name])``, or ``default`` when unset or blank.

    Errors name the variable and the bad value (``TAXI_TRAIN_MONTHS must be a whole number,
    got 'two'``); ``minimum`` rejects values below it (0 reads as "must not be negative").
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"{name} must be {what}{unit}, got {raw!r}") from None
    if minimum is not None and value < minimum:
        limit = "must not be negative" if minimum == 0 else f"must be at least {minimum}"
        raise ValueError(f"{name} {limit}, got {value}")
    return value
