"""The `refsift` command line: one subcommand per job, one module per subcommand, each a
thin layer over a pipeline (`add(sub)` declares its options, `run(args, beam_args)` runs it).

Arguments that the Beam-backed commands do not know are Beam pipeline options and pass
through (`--runner`, `--direct_running_mode`, `--project`, ...).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import refsift
from refsift.cli import (
    ablate,
    attribute,
    classify,
    dedup,
    demo,
    distill,
    finetune,
    mix,
    novelty,
    report,
    score,
    select,
    sql,
    verify,
)
from refsift.errors import RefsiftError

COMMANDS = (
    dedup,
    score,
    sql,
    verify,
    select,
    distill,
    classify,
    finetune,
    mix,
    ablate,
    novelty,
    attribute,
    report,
    demo,
)
PASS_THROUGH = {
    "score",
    "select",
    "novelty",
    "classify",
    "dedup",
    "ablate",
    "mix",
}  # their unknown arguments are Beam options


class _Parser(argparse.ArgumentParser):
    """Bad arguments get one line, not the whole usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="refsift",
        description="Score corpora with reference language models, select training data, audit fine-tunes.",
    )
    p.add_argument("--version", action="version", version=f"refsift {refsift.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add(sub)
    return p


def _quiet_beam_import_warning(record: logging.LogRecord) -> bool:
    # Beam warns at import that optional GCP client libraries are missing; local runs don't need them.
    return not record.getMessage().startswith("apitools not found")


class _Stderr(logging.StreamHandler):
    """A handler on whatever `sys.stderr` is when a message comes: the terminal's copy while
    a job's descriptor 2 goes to the workers' log (`console.worker_output`), a test's capture."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_output(verbose: bool) -> None:
    """refsift's own messages (logger `refsift`, INFO) on stderr; the logs and progress bars
    of Beam and Hugging Face libraries only with --verbose. Set before those libraries load."""
    log = logging.getLogger("refsift")
    if not log.handlers:
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("refsift: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    logging.getLogger().addFilter(_quiet_beam_import_warning)
    if verbose:
        logging.basicConfig(level=logging.INFO)
        return
    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    if "transformers" in sys.modules:  # already loaded (the Python API, tests): tell it directly
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()


def main(argv: list[str] | None = None) -> int:
    p = parser()
    try:  # argparse exits on a bad option (2) and after --help (0): its code is returned, as every other one
        args, extra = p.parse_known_args(argv)
        if extra and args.command not in PASS_THROUGH:
            p.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exit_:
        return exit_.code
    configure_output(args.verbose)
    try:
        code = args.handler(args, extra)
        if sys.stdout is not None:  # None when standard output was closed
            sys.stdout.flush()  # a full disk or a closed pipe shows now, not as noise at exit
    except RefsiftError as err:
        print(f"refsift: {'error: ' if err.exit_code == 2 else ''}{err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("refsift: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (refsift sql ... | head): stop quietly, as Unix tools do
        _drop_stdout()
        return 141
    except OSError as err:  # a full disk, a device that refuses a write: one line, no traceback
        _drop_stdout()
        where = f" ({err.filename})" if err.filename else ""
        print(f"refsift: error: {err.strerror or err}{where}", file=sys.stderr)
        return 1
    return code or 0


def _drop_stdout() -> None:
    """Points standard output at /dev/null, so that what is still buffered for a reader
    that left (or a full disk) is not flushed again, with a traceback, at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # no file descriptor (a test's capture)
        pass


if __name__ == "__main__":
    sys.exit(main())
