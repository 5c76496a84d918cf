"""The exception types that the CLI turns into a one-line message."""


class RefsiftError(Exception):
    """A user-facing error: bad arguments, missing files, incompatible models (exit code 2)."""

    exit_code = 2


class Interrupted(RefsiftError):
    """The user stopped a command with Ctrl-C (exit code 130, as a shell reports SIGINT)."""

    exit_code = 130
