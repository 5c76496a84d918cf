"""Text for a terminal: aligned tables whose cells cannot drive the terminal.

Shared by the commands and the demo (a pipeline never imports the CLI). Data reaches a
table as it is stored, and stored text can hold anything: ESC sequences that recolour or
rewrite the screen, BEL, carriage returns that overwrite a line, C1 controls, and bidi
overrides that reorder what is shown. `printable` writes each of them as an escape.
"""

from __future__ import annotations

import math
import re

# C0 and C1 controls, DEL, and the bidirectional overrides and isolates (U+202A-E, U+2066-9).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def printable(text: str) -> str:
    """`text` with every control character written as an escape (\\n, \\x1b, \\u202e, ...)."""

    def escape(match):
        c = match.group()
        return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")

    return _UNSAFE.sub(escape, text)


def cell(value, width: int = 60) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.6g}"
    text = printable(str(value))
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(columns: list[str], rows: list[tuple]) -> str:
    """Columns aligned, numbers right-aligned, long text cut, control characters escaped."""
    cells = [[cell(v) for v in row] for row in rows]
    names = [printable(c) for c in columns]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(names)]
    numeric = [all(isinstance(row[i], int | float) or row[i] is None for row in rows) for i in range(len(columns))]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(names), line(["-" * w for w in widths]), *map(line, cells), f"({len(rows)} rows)"])


def plural(n: int, word: str) -> str:
    """'1 chunk', '2 chunks': a count with its noun."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"
