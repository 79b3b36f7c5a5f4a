"""How the studio writes durations: one format everywhere (Train, Compare, reports, the command line, Jobs)."""

from __future__ import annotations

import math


def format_duration(seconds: float | None) -> str:
    """59 → "59 s", 61 → "1 min 01 s", 3700 → "1 h 01 min"; "—" when unknown."""
    if seconds is None or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        return "—"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"
