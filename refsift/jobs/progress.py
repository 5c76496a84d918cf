"""A live progress line for Beam jobs, whatever process does the work.

Workers may be this process (DirectRunner), its subprocesses (multi_processing) or other
machines (Dataflow), and Beam's metrics are only readable once a local job ends. So each
counting DoFn instance writes its cumulative counts to a small JSON file of its own under
`RUN/_progress/` (at most once a second; every 30 s on a remote filesystem), and a thread
on the launcher sums the files into one line: records done of the total, tokens per role,
tokens per second and an estimate of the time left.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import uuid

from apache_beam.io.filesystems import FileSystems

from refsift.jobs import rundir

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


def describe(
    counts: dict,
    total: int | None,
    done_before: int,
    elapsed: float,
    roles: list[str],
    activity: str = "scoring",
    unit: str = "records",
) -> str:
    """The progress line for summed counts."""
    done = counts.get("records", 0)
    parts = []
    if total:
        remaining = max(total - done_before, 0)
        share = done / remaining if remaining else 1.0
        parts.append(f"{min(share, 1):.0%} · {unit} {done_before + done:,}/{total:,}")
    else:
        parts.append(f"{unit} {done_before + done:,}")
    for role in roles:
        tokens = counts.get(f"tokens_{role}", 0)
        parts.append(f"{role} {_number(tokens)} tok {_number(tokens / max(elapsed, 1e-9))} tok/s")
    if total and done:
        left = elapsed * (max(total - done_before, 0) - done) / done
        parts.append(f"ETA {_duration(max(left, 0))}")
    return f"{activity} " + " · ".join(parts)


class Line:
    """Prints the progress of a run while its job runs (a context manager).

    It writes to whatever `sys.stderr` is when it writes (unless given a stream): while a
    job runs, `console.worker_output` points descriptor 2 at the workers' log and gives
    `sys.stderr` a copy of the terminal, and the line belongs on the terminal. On a terminal
    the line rewrites itself; in a log or a pipe it is printed every `log_every` seconds
    (`$REFSIFT_PROGRESS_EVERY`, else 30) and, when it was printed, once more at the end: a
    job shorter than that leaves only the command's own summary in a log.
    """

    def __init__(
        self,
        run: str,
        roles: list[str],
        *,
        done_before: int = 0,
        stream=None,
        log_every: float | None = None,
        activity: str = "scoring",
        unit: str = "records",
    ):
        self._directory = rundir.join(run, DIRECTORY)
        self._roles, self._done_before, self._activity, self._unit = roles, done_before, activity, unit
        self._stream = stream
        self._log_every = log_every or float(os.environ.get("REFSIFT_PROGRESS_EVERY") or 30)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._started = time.monotonic()
        self._shown_on_tty = False
        self._printed = ""

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

    def _target(self):
        stream = self._stream or sys.stderr
        return stream, bool(getattr(stream, "isatty", None) and stream.isatty())

    def _show(self, final: bool = False) -> bool:
        """Writes the line once; False when there is nothing to show yet."""
        counts, total = self.read()
        if not counts:
            return False
        stream, tty = self._target()
        elapsed = time.monotonic() - self._started
        text = describe(counts, total, self._done_before, elapsed, self._roles, self._activity, self._unit)
        if tty:
            stream.write(f"\r\033[K{text}")
            self._shown_on_tty = True
        elif not (final and text == self._printed):
            stream.write(text + "\n")
        self._printed = text
        stream.flush()
        return True

    def _loop(self) -> None:
        next_log = time.monotonic() + self._log_every
        while not self._stop.wait(min(0.5, self._log_every)):
            if self._target()[1]:
                self._show()
            elif time.monotonic() >= next_log and self._show():
                next_log = time.monotonic() + self._log_every

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        stream, tty = self._target()
        if self._shown_on_tty and tty:
            stream.write("\r\033[K")
            stream.flush()
        elif not tty and exc[0] is None and self._printed:
            self._show(final=True)


class StepLog:
    """Training's own progress, as Hugging Face's Trainer and TRL log it: the step, its
    loss, the learning rate, tokens per second and the time left. A line every `every`
    steps, or by default every tenth of the run but at most one per `min_interval` seconds;
    and always the last step's, which says how long the whole took; through refsift's logger
    (the CLI shows it on stderr; a library caller configures logging as it likes) and, with
    `path`, every line appended to that file too.

    Args:
      what: the line's label ("finetune", "untrac-inv: target all").
      steps: the optimizer steps the run will take.
      every: steps between lines (then every one of them is printed).
      min_interval: seconds between lines by default, the last excepted.
      path: a log file to append every line to.
    """

    def __init__(
        self,
        what: str,
        steps: int,
        *,
        every: int | None = None,
        min_interval: float = 10.0,
        path: str | os.PathLike | None = None,
    ):
        self.what, self.steps = what, steps
        self.every = every or max(1, steps // 10)
        self.min_interval = 0.0 if every else min_interval
        self.path = path
        self.lines: list[str] = []
        self._started = self._shown = time.monotonic()
        self._tokens = 0

    def __call__(self, step: int, loss: float, lr: float, tokens: int) -> None:
        self._tokens += int(tokens)
        now = time.monotonic()
        last = step >= self.steps
        if not last and (step % self.every or now - self._shown < self.min_interval):
            return
        elapsed = now - self._started
        speed = f"{_number(self._tokens / max(elapsed, 1e-9))} tok/s"
        took = f"{elapsed:.1f}s" if elapsed < 10 else _duration(elapsed)
        when = f"done in {took}" if last else f"ETA {_duration(elapsed * (self.steps - step) / step)}"
        line = f"{self.what}: step {step}/{self.steps} · loss {loss:.4f} · lr {lr:.2e} · {speed} · {when}"
        self.lines.append(line)
        self._shown = now
        logging.getLogger("refsift").info(line)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
