"""A live progress line for Beam jobs, whatever process does the work.

Workers may be this process (DirectRunner), its subprocesses (multi_processing) or other
machines (Dataflow), and Beam's metrics are only readable once a local job ends. So each
counting DoFn instance writes its cumulative counts to a small JSON file of its own under
`RUN/_progress/` (at most once a second; every 30 s on a remote filesystem), and a thread
on the launcher sums the files into one line: records done of the total, tokens per role,
tokens per second and an estimate of the time left.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid

from apache_beam.io.filesystems import FileSystems

from refsift import rundir

DIRECTORY = "_progress"
TOTAL = "total.json"


class Counter:
    """Cumulative counts of one DoFn instance, written now and then to its own file.

    Args:
      run: the run directory, or None to count nothing.
      stage: a label for the file name (the DoFn's step).
    """

    def __init__(self, run: str | None, stage: str):
        self._path = rundir.join(run, DIRECTORY, f"{stage}-{os.getpid()}-{uuid.uuid4().hex[:8]}.json") if run else None
        self._interval = 1.0 if run is None or rundir.is_local(run) else 30.0
        self._counts: dict[str, int] = {}
        self._written = 0.0

    def add(self, **counts: int) -> None:
        if self._path is None:
            return
        for key, value in counts.items():
            self._counts[key] = self._counts.get(key, 0) + int(value)
        if time.monotonic() - self._written >= self._interval:
            self.flush()

    def flush(self) -> None:
        if self._path is None or not self._counts:
            return
        try:
            rundir.write_json(self._path, self._counts)
        except OSError:
            return  # progress is a courtesy; it never fails a job
        self._written = time.monotonic()


def write_total(run: str, records: int) -> None:
    """Records the corpus holds (from the index pass), for the estimate of time left."""
    rundir.write_json(rundir.join(run, DIRECTORY, TOTAL), {"records": records})


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _number(n: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if n >= 10 * size:
            return f"{n / size:.1f}{unit}"
    return f"{n:,.0f}"


def describe(counts: dict, total: int | None, done_before: int, elapsed: float, roles: list[str]) -> str:
    """The progress line for summed counts."""
    done = counts.get("records", 0)
    parts = []
    if total:
        remaining = max(total - done_before, 0)
        share = done / remaining if remaining else 1.0
        parts.append(f"{min(share, 1):.0%} · records {done_before + done:,}/{total:,}")
    else:
        parts.append(f"records {done_before + done:,}")
    for role in roles:
        tokens = counts.get(f"tokens_{role}", 0)
        parts.append(f"{role} {_number(tokens)} tok {_number(tokens / max(elapsed, 1e-9))} tok/s")
    if total and done:
        left = elapsed * (max(total - done_before, 0) - done) / done
        parts.append(f"ETA {_duration(max(left, 0))}")
    return "scoring " + " · ".join(parts)


class Line:
    """Prints the progress of a run while its job runs (a context manager).

    On a terminal the line rewrites itself; in a log it is printed every `log_every` seconds.
    """

    def __init__(self, run: str, roles: list[str], *, done_before: int = 0, stream=None, log_every: float = 30.0):
        self._directory = rundir.join(run, DIRECTORY)
        self._roles, self._done_before = roles, done_before
        self._stream = stream or sys.stderr
        self._tty = hasattr(self._stream, "isatty") and self._stream.isatty()
        self._every = 0.5 if self._tty else log_every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._started = time.monotonic()
        self._shown = False

    def read(self) -> tuple[dict, int | None]:
        counts: dict[str, int] = {}
        total = None
        try:
            found = FileSystems.match([rundir.join(self._directory, "*.json")])[0].metadata_list
        except Exception:
            return counts, total
        for meta in found:
            try:
                content = rundir.read_json(meta.path) or {}
            except (OSError, ValueError):
                continue
            if meta.path.endswith("/" + TOTAL):
                total = content.get("records")
                continue
            for key, value in content.items():
                counts[key] = counts.get(key, 0) + value
        return counts, total

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            counts, total = self.read()
            if not counts:
                continue
            text = describe(counts, total, self._done_before, time.monotonic() - self._started, self._roles)
            self._stream.write(f"\r\033[K{text}" if self._tty else text + "\n")
            self._stream.flush()
            self._shown = True

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if self._shown and self._tty:
            self._stream.write("\r\033[K")
            self._stream.flush()
