"""`WriteShards`: rows -> `<dir>/part-<i>-of-<n>.parquet` (explicit schema, no inference)
or `.jsonl`, on any Beam runner, exactly once.

Built from ParDo, GroupByKey and a global combine only, so that it runs where Beam's own
sinks do not (the DaskRunner). It follows the protocol of Beam's file sinks: rows are
written to new files in `<dir>/_tmp/` whose names are output; a failed bundle's output
never reaches the next step, so only the files of work that succeeded are listed; one final
step renames the listed files into place and removes `_tmp` with whatever a failed attempt
left there. How rows reach files depends on the runner:
- by bundle (DirectRunner, Dataflow, Portable): a bundle writes a file per `rows_per_file`
  rows and its last one in `finish_bundle`, so memory holds `rows_per_file` rows;
- by key (DaskRunner, which drops what `finish_bundle` outputs): rows are spread over
  `DASK_SHARDS` keys and each key's rows written as one file after a GroupByKey, so a
  worker holds a key's rows.
"""

from __future__ import annotations

import json
import random
import uuid

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from refsift.transforms.runner_quirks import on_dask

TMP = "_tmp"
DASK_SHARDS = 16


def _suffix(schema) -> str:
    return ".parquet" if schema is not None else ".jsonl"


class _WriteFn(beam.DoFn):
    def __init__(self, directory, schema, rows_per_file):
        self._directory, self._schema, self._limit = directory, schema, rows_per_file

    def start_bundle(self):
        self._rows = []

    def _write(self) -> str:
        rows, self._rows = self._rows, []
        path = f"{self._directory}/{TMP}/{uuid.uuid4().hex}{_suffix(self._schema)}"
        if self._schema is not None:
            from refsift.transforms.commit_chunks import write_table

            write_table(pa.Table.from_pylist(rows, schema=self._schema), path)
        else:
            with FileSystems.create(path) as handle:
                handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8"))
        return path

    def process(self, row):
        self._rows.append(row)
        if len(self._rows) >= self._limit:
            yield self._write()

    def finish_bundle(self):
        if self._rows:
            yield WindowedValue(self._write(), GlobalWindow().max_timestamp(), [GlobalWindow()])


class _WriteGroupFn(_WriteFn):
    """Writes each key's rows (after a GroupByKey) as files: output from `process` only."""

    def process(self, keyed):
        _, rows = keyed
        for row in rows:
            self._rows.append(row)
            if len(self._rows) >= self._limit:
                yield self._write()
        if self._rows:
            yield self._write()

    def finish_bundle(self):
        return None


def _finalize(paths: list[str], directory: str, schema) -> list[str]:
    """Renames the written files into place as part-<i>-of-<n>; removes what failed left.
    No rows at all still give a Parquet table its (empty) shard: its columns stay known."""
    paths = sorted(paths)
    final = [f"{directory}/part-{i:05d}-of-{len(paths):05d}{_suffix(schema)}" for i in range(len(paths))]
    if paths:
        FileSystems.rename(paths, final)
    elif schema is not None:
        from refsift.transforms.commit_chunks import write_table

        final = [f"{directory}/part-00000-of-00001.parquet"]
        write_table(schema.empty_table(), final[0])
    if FileSystems.exists(f"{directory}/{TMP}"):  # with what failed bundles left in it
        FileSystems.delete([f"{directory}/{TMP}"])
    return final


class WriteShards(beam.PTransform):
    """Writes dict rows as zstd Parquet shards (keys not in the schema dropped), or as JSON
    lines without a schema; outputs the final file names.

    Args:
      directory: the table's folder (local or any Beam filesystem).
      schema: the table's pyarrow schema (from `refsift.schemas`); None writes JSON lines.
      rows_per_file: rows a bundle holds before it writes them.
    """

    def __init__(self, *, directory: str, schema: pa.Schema | None, rows_per_file: int = 50_000):
        super().__init__()
        self._directory, self._schema, self._limit = directory.rstrip("/"), schema, rows_per_file

    def expand(self, rows):
        if on_dask(rows.pipeline.options):
            written = (
                rows
                | "Spread" >> beam.Map(lambda row: (random.randrange(DASK_SHARDS), row))
                | "ByShard" >> beam.GroupByKey()
                | "Write" >> beam.ParDo(_WriteGroupFn(self._directory, self._schema, self._limit))
            )
        else:
            written = rows | "Write" >> beam.ParDo(_WriteFn(self._directory, self._schema, self._limit))
        return (
            written
            | "Written" >> beam.combiners.ToList()
            | "Finalize" >> beam.FlatMap(_finalize, self._directory, self._schema)
        )
