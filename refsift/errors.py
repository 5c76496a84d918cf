"""The one exception type that the CLI turns into a one-line error message."""


class RefsiftError(Exception):
    """A user-facing error: bad arguments, missing files, incompatible models."""
