"""Loading a tokenizer or model once per worker process, shared by all its DoFn instances.

Beam may run several DoFn instances per process (one per thread on Dataflow, one per
stage here); `apache_beam.utils.shared.Shared` hands them one object. Shared keeps a weak
reference, so the loaded object is wrapped in a small holder class that supports one.
"""

from __future__ import annotations

from collections.abc import Callable

from apache_beam.utils.shared import Shared


class _Holder:
    def __init__(self, value):
        self.value = value


def acquire(shared: Shared, tag: str, load: Callable[[], object]):
    """The object cached under `tag` in this process, loading it on first use."""
    return shared.acquire(lambda: _Holder(load()), tag=tag)
