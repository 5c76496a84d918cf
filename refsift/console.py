"""What a job shows on the console: refsift's own lines, never its workers' noise.

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
import os
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
