"""How the studio writes durations and money: one format everywhere (Train, Compare, reports, the CLI, Jobs)."""

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


def format_usd(amount: float | None) -> str:
    """12.5 → "$12.50", 0.0042 → "$0.0042" (a cent's fraction keeps two significant digits: a cheap flavour's
    cost and a tiny cap must not both read "$0.00"); "—" when unknown."""
    if amount is None or not isinstance(amount, (int, float)) or not math.isfinite(amount):
        return "—"
    if 0 < abs(amount) < 0.01:
        decimals = min(8, 1 - math.floor(math.log10(abs(amount))))
        return f"${amount:.{decimals}f}".rstrip("0")
    return f"${amount:,.2f}"
