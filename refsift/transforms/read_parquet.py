"""`ReadParquet`: Parquet files matching a pattern -> their rows (dicts) or Arrow tables of
a batch of rows, on any Beam runner.

Built from Create and ParDo only, so that it runs where Beam's own sources do not (the
DaskRunner translates Create, ParDo, GroupByKey and Flatten, and nothing else): the files
are matched on a worker, spread out, and each read by one worker in record batches, so
memory holds one batch. refsift reads its own shards with it, which are small (a chunk's).
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems


def _matches(pattern: str) -> list[str]:
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


class _ReadFn(beam.DoFn):
    def __init__(self, columns, batched: bool, batch_size: int):
        self._columns, self._batched, self._batch_size = columns, batched, batch_size

    def process(self, path: str):
        import pyarrow as pa
        import pyarrow.parquet as pq

        with FileSystems.open(path, compression_type="uncompressed") as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=self._batch_size, columns=self._columns):
                if self._batched:
                    yield pa.Table.from_batches([batch])
                else:
                    yield from batch.to_pylist()


class ReadParquet(beam.PTransform):
    """Rows of the Parquet files matching `pattern`.

    Args:
      pattern: a file pattern (local or any Beam filesystem).
      columns: the columns to read (default all).
      batched: yield pyarrow Tables of `batch_size` rows instead of dicts.
      batch_size: rows per batch read.
    """

    def __init__(self, pattern: str, *, columns: list[str] | None = None, batched: bool = False, batch_size=4096):
        super().__init__()
        self._pattern, self._fn = pattern, _ReadFn(columns, batched, batch_size)

    def expand(self, pbegin):
        return (
            pbegin
            | "Pattern" >> beam.Create([self._pattern])
            | "Match" >> beam.FlatMap(_matches)
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(self._fn)
        )
