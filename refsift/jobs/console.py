"""What a job shows on the console: refsift's own lines, never its workers' noise, and tables
whose cells cannot drive the terminal.

Beam's workers write to the process's standard error (file descriptor 2) directly: logs,
and on a failure or Ctrl-C whole tracebacks, from this process (the DirectRunner) and from
the worker processes it starts (which inherit the descriptor), and from the runner's own
threads as they die when a job is torn down. While a job runs, `worker_output` points
descriptor 2 at a log file and gives Python's `sys.stderr` (refsift's messages, the
progress line) a copy of the terminal, so the user sees one line per event and the log
keeps the rest. With --verbose nothing is redirected.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from refsift.errors import Interrupted


def verbose() -> bool:
    """Whether the command runs with --verbose (Beam's own logs are shown then)."""
    return logging.getLogger("apache_beam").isEnabledFor(logging.INFO)


def _real_stderr() -> bool:
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # replaced by a test harness
        return False


def _beam_thread(args) -> bool:
    """Whether an exception ended one of Beam's (or gRPC's) own threads."""
    frames = [frame.f_code.co_filename for frame, _ in traceback.walk_tb(args.exc_traceback)]
    return any("apache_beam" in f or "/grpc/" in f for f in frames)


def _thread_hook(previous):
    def hook(args):
        if not _beam_thread(args):
            previous(args)
        elif _redirected.is_set():  # into the log; once the job is over such a death is teardown: dropped
            traceback.print_exception(args.exc_type, args.exc_value, args.exc_traceback, file=sys.__stderr__)

    hook.refsift = True
    return hook


_redirected = threading.Event()


@contextmanager
def worker_output() -> Iterator[str | None]:
    """Redirects descriptor 2 to a new log file for the duration; yields its path (None
    with --verbose). The log is kept only when the block fails (not for Ctrl-C)."""
    if verbose():
        yield None
        return
    if not getattr(threading.excepthook, "refsift", False):
        threading.excepthook = _thread_hook(threading.excepthook)
    handle, path = tempfile.mkstemp(prefix="refsift-workers-", suffix=".log")
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(handle, 2)
    os.close(handle)
    replaced, terminal = [], None
    if _real_stderr():  # keep Python's stderr (and refsift's log handler) on the terminal
        terminal = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
        replaced = [h for h in logging.getLogger("refsift").handlers if getattr(h, "stream", None) is sys.stderr]
        for h in replaced:
            h.setStream(terminal)
        original, sys.stderr = sys.stderr, terminal
    keep = False
    _redirected.set()
    try:
        yield path
    except Interrupted:
        raise
    except BaseException:
        keep = True  # the log says what went wrong
        raise
    finally:
        _redirected.clear()
        if terminal is not None:
            terminal.flush()
            sys.stderr = original
            for h in replaced:
                h.setStream(original)
            terminal.close()
        os.dup2(saved, 2)
        os.close(saved)
        if not keep:
            os.unlink(path)


# Tables. Data reaches a table as it is stored, and stored text can hold anything: ESC
# sequences that recolour or rewrite the screen, BEL, carriage returns that overwrite a
# line, C1 controls, and bidi overrides that reorder what is shown. `printable` writes each
# of them as an escape.
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
