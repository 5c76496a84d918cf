"""The exception types that the CLI turns into a one-line message, and the explanation of
any other failure in one line (Beam wraps a worker's exception, as text when the worker is
another process)."""

from __future__ import annotations

import errno
import re


class RefsiftError(Exception):
    """A user-facing error: bad arguments, missing files, incompatible models (exit code 2)."""

    exit_code = 2


class Interrupted(RefsiftError):
    """The user stopped a command with Ctrl-C (exit code 130, as a shell reports SIGINT)."""

    exit_code = 130


_RAISED = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt)): (.+?)(?: \[while running .*)?$", re.M)


def number(x: float) -> str:
    """A number as a refusal writes it: 2,147,483,647 or 0.5."""
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"


def _chain(err: BaseException | None) -> list[BaseException]:
    chain, seen = [], set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        chain.append(err)
        err = err.__cause__ or err.__context__
    return chain


def interrupted(err: BaseException) -> bool:
    """Whether a job ended because of Ctrl-C (Beam re-raises it wrapped, or as text)."""
    chain = _chain(err)
    return any(isinstance(e, KeyboardInterrupt) for e in chain) or bool(
        re.search(r"^KeyboardInterrupt", "\n".join(str(e) for e in chain), re.M)
    )


def explain(err: BaseException) -> str:
    """What stopped a job, in one line: a refsift error or a full disk as they are, else the
    innermost exception's type and first line. Beam wraps a worker's exception (as text,
    with its traceback, when the worker is another process)."""
    chain = _chain(err)
    for e in chain:
        if isinstance(e, RefsiftError):
            return str(e).split(" [while running")[0]
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return "the disk is full (no space left on device)"
    text = "\n".join(str(e) for e in chain)
    if "No space left on device" in text:
        return "the disk is full (no space left on device)"
    raised = _RAISED.findall(text)
    for kind, message in raised:
        if kind.endswith("RefsiftError"):
            return message
    if raised:
        kind, message = raised[-1]
        return f"{kind.rsplit('.', 1)[-1]}: {message[:300]}"
    last = chain[-1]
    first = (str(last).strip().splitlines() or [""])[0][:300]
    return f"{type(last).__name__}: {first}" if first else type(last).__name__
