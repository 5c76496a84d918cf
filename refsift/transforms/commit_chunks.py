"""`CommitChunks`: a finished chunk -> its shards in `RUN/<table>/` (`tokens`, `examples`,
`rejected` for a scoring run; whatever tables the job's schemas name), then
its completion marker in `RUN/_chunks/`.

This is the commit protocol of resumable runs (datatrove's, at the grain of a chunk): each
shard is written under a temporary name and renamed into place, and the marker is written
last, so a chunk counts as done only once everything it produced is in place. Names are
deterministic (`part-<task>-<chunk>.parquet`), so a chunk redone after a crash replaces
what it had half written, and a resumed run removes any shard without a marker before it
starts. The marker holds the chunk's counts, from which the launcher checks conservation
(read = scored + rejected) and builds the manifest, and each shard's size and SHA-256, from
which a resumed run or `refsift verify` tells a shard that changed since (`refsift.jobs`).
"""

from __future__ import annotations

import hashlib
import uuid

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from refsift.jobs import progress, rundir

MARKERS = "_chunks"  # RUN/_chunks/<task>-<chunk>.json: a chunk's completion marker
TABLES = ("tokens", "examples", "rejected")
COUNTS = ("read", "scored", "windows", "tokens_scored")  # the counts a marker holds, beside `rejected`


def shard_path(run: str, table: str, name: str) -> str:
    return rundir.join(run, table, f"part-{name}.parquet")


def write_table(table: pa.Table, path: str) -> dict:
    """Writes a Parquet file whole or not at all (temporary name, then a rename); returns
    its size and SHA-256.

    No dictionary encoding: token ids, spans and losses gain nothing from it, and without
    it the tokens shards are 25% smaller and written 40% faster (benchmarks/score_overhead.py).
    """
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", use_dictionary=False)
    data = sink.getvalue()
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with FileSystems.create(tmp) as handle:
        handle.write(memoryview(data))
    FileSystems.rename([tmp], [path])
    return {"bytes": data.size, "sha256": hashlib.sha256(data).hexdigest()}


def commit(chunk, run: str, schemas: dict[str, pa.Schema]) -> dict:
    """Writes the chunk's shards and then its marker; returns the marker."""
    from refsift.schemas import REJECTED_SCHEMA

    if chunk.read != len(chunk.documents) + len(chunk.rejected):
        raise RuntimeError(f"chunk {chunk.name}: read {chunk.read} != {len(chunk.documents)} + {len(chunk.rejected)}")
    tables = {}
    for name in schemas:
        if name == "tokens":
            tables[name] = chunk.tokens_table(schemas["tokens"]) if chunk.documents else None
        elif name == "rejected":
            tables[name] = pa.Table.from_pylist(chunk.rejected, schema=REJECTED_SCHEMA) if chunk.rejected else None
        else:
            tables[name] = chunk.tables.get(name) if chunk.documents else None
    files, digests = {}, {}
    for name, table in tables.items():
        if table is not None and table.num_rows:
            files[name] = shard_path(run, name, chunk.name).rsplit("/", 1)[-1]
            digests[name] = write_table(table, shard_path(run, name, chunk.name))
    reasons: dict[str, int] = {}
    for row in chunk.rejected:
        reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
    marker = {
        "task": chunk.task,
        "chunk": chunk.index,
        "final": chunk.final,
        "read": chunk.read,
        "scored": len(chunk.documents),
        "rejected": reasons,
        "windows": len(chunk.windows) if chunk.windows is not None else 0,
        "tokens_scored": sum(d.get("n_tokens", 0) for d in chunk.documents),
        "files": files,
        "digests": digests,
    }
    rundir.write_json(rundir.join(run, MARKERS, f"{chunk.name}.json"), marker)
    return marker


class _CommitFn(beam.DoFn):
    def __init__(self, run: str, schemas: dict):
        self._run, self._schemas = run, schemas
        self._committed = Metrics.counter("CommitChunks", "chunks")

    def setup(self):
        self._progress = progress.Counter(self._run, "commit")

    def process(self, chunk):
        marker = commit(chunk, self._run, self._schemas)
        self._committed.inc()
        self._progress.add(records=marker["read"], documents=marker["scored"])
        yield marker

    def teardown(self):
        self._progress.flush()


class CommitChunks(beam.PTransform):
    """Chunks -> their shards and completion markers; outputs the markers.

    Args:
      run: the run directory (local or any Beam filesystem).
      schemas: table name -> schema of every table the job writes (a scoring run's `tokens`,
        `examples` and `rejected`).
    """

    def __init__(self, *, run: str, schemas: dict[str, pa.Schema]):
        super().__init__()
        self._fn = _CommitFn(run.rstrip("/"), schemas)

    def expand(self, chunks):
        return chunks | "Commit" >> beam.ParDo(self._fn)
