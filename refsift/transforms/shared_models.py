"""Loading a tokenizer or model once per worker process, shared by all its DoFn instances.

Beam may run several DoFn instances per process (one per thread on Dataflow, one per
stage here); `apache_beam.utils.shared.Shared` hands them one object. Shared keeps a weak
reference, so the loaded object is wrapped in a small holder class that supports one.
Call these from `DoFn.setup`, never from `__init__` (which runs on the launcher).
"""

from __future__ import annotations

from collections.abc import Callable

from apache_beam.utils.shared import Shared


class _Holder:
    def __init__(self, value):
        self.value = value


def acquire(shared: Shared, tag: str, load: Callable[[], object]):
    """The object cached under `tag` in this process, loading it on first use."""
    return shared.acquire(lambda: _Holder(load()), tag=tag).value


def shared_tokenizer(shared: Shared, spec: str, trust_remote_code: bool = False):
    from refsift.models import load_tokenizer

    return acquire(shared, f"tokenizer:{spec}", lambda: load_tokenizer(spec, trust_remote_code=trust_remote_code))


def shared_model(shared: Shared, spec: str, *, device: str, dtype: str, trust_remote_code: bool):
    from refsift.models import load_model

    tag = f"model:{spec}:{device}:{dtype}:{trust_remote_code}"
    return acquire(
        shared, tag, lambda: load_model(spec, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    )
