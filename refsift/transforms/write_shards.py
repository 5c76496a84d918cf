"""`WriteShards`: rows -> `<dir>/part-*.parquet` with an explicit schema (no inference)."""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa


class WriteShards(beam.PTransform):
    """Writes dict rows as zstd Parquet shards; keys not in the schema are dropped.

    Args:
      directory: the table's folder (local or any Beam filesystem).
      schema: the table's pyarrow schema (from `refsift.schemas`).
    """

    def __init__(self, *, directory: str, schema: pa.Schema):
        super().__init__()
        self._directory, self._schema = directory.rstrip("/"), schema

    def expand(self, rows):
        return rows | "WriteParquet" >> beam.io.WriteToParquet(
            f"{self._directory}/part",
            self._schema,
            codec="zstd",
            file_name_suffix=".parquet",
        )
