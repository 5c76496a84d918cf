"""What a command found, computed apart from how it is shown: the statistics and findings
of a run (`run`), an attribution (`attribution`) and a novelty report (`novelty`, the data
of report.json), which the command line prints and `refsift.pages` renders."""

from __future__ import annotations

import math


def interval(low, high, fmt: str = "{:+.3f}") -> str:
    """ "low .. high" for an interval, "" when either end is missing or not finite."""
    if not all(isinstance(x, int | float) and math.isfinite(x) for x in (low, high)):
        return ""
    return f"{fmt.format(low)} .. {fmt.format(high)}"
