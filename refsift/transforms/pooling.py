"""`PoolingDoFn`: a DoFn that collects a bundle's elements into pools and processes each
pool at once, for work that wants many elements together (length-sorted model batches).

A pool is handed to `flush` when it reaches `pool_size`, and whatever is left at the end of
the bundle too; rows flushed there are re-windowed into the global window, as Beam requires
of output from `finish_bundle`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue


class PoolingDoFn(beam.DoFn):
    """Subclasses set `pool_size` and implement `flush(pool)`, yielding output rows."""

    pool_size: int = 64

    def flush(self, pool: list) -> Iterable:
        raise NotImplementedError

    def start_bundle(self):
        self._pool = []

    def process(self, element):
        self._pool.append(element)
        if len(self._pool) >= self.pool_size:
            yield from self._drain()

    def finish_bundle(self):
        for row in self._drain():
            yield WindowedValue(row, GlobalWindow().max_timestamp(), [GlobalWindow()])

    def _drain(self) -> Iterator:
        pool, self._pool = self._pool, []
        if pool:
            yield from self.flush(pool)
