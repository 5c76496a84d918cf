"""CommitChunks on its own: a chunk's shards, then its marker (counts, file names, digests),
and the ledger's one integrity check reading them back (what --resume and verify use)."""

import hashlib
import json

import apache_beam as beam
import pyarrow as pa
from apache_beam.testing.test_pipeline import TestPipeline as Pipeline
from apache_beam.testing.util import assert_that, equal_to

from refsift.corpus.chunk import Chunk
from refsift.corpus.records import rejection
from refsift.jobs import ledger
from refsift.schemas import REJECTED_SCHEMA
from refsift.transforms.commit_chunks import CommitChunks

SCHEMA = pa.schema([("doc_id", pa.string()), ("n_tokens", pa.int64())])
SCHEMAS = {"documents": SCHEMA, "rejected": REJECTED_SCHEMA}


def chunk(index, n_docs, reasons):
    docs = [{"doc_id": f"{index}-{i}", "n_tokens": 10 + i} for i in range(n_docs)]
    rejected = [rejection("in.jsonl", 100 + i, reason, "{bad") for i, reason in enumerate(reasons)]
    return Chunk(task=0, index=index, final=index == 1, read=n_docs + len(reasons), documents=docs,
                 rejected=rejected, tables={"documents": pa.Table.from_pylist(docs, schema=SCHEMA)})  # fmt: skip


def test_markers_count_and_sign_what_their_shards_hold(tmp_path):
    run = str(tmp_path / "run")
    with Pipeline() as p:
        markers = (
            p
            | beam.Create([chunk(0, 3, ["invalid_json", "invalid_json", "missing_text"]), chunk(1, 2, [])])
            | CommitChunks(run=run, schemas=SCHEMAS)
        )
        counts = markers | beam.Map(lambda m: (m["chunk"], m["read"], m["scored"], m["rejected"], sorted(m["files"])))
        assert_that(counts, equal_to([(0, 6, 3, {"invalid_json": 2, "missing_text": 1}, ["documents", "rejected"]),
                                      (1, 2, 2, {}, ["documents"])]))  # fmt: skip
    markers = ledger.read_markers(run)
    for marker in markers:
        for table, name in marker["files"].items():
            data = (tmp_path / "run" / table / name).read_bytes()
            assert marker["digests"][table] == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert ledger.committed(markers) == {0: {"all"}}
    assert ledger.problems(run, [0], markers, tuple(SCHEMAS)) == []
    totals = ledger.totals(markers)
    assert (totals["read"], totals["scored"], totals["rejected"], totals["tokens_scored"]) == (
        8,
        5,
        3,
        10 + 11 + 12 + 10 + 11,
    )


def test_the_ledger_names_a_changed_shard_and_a_stray_one(tmp_path):
    run = str(tmp_path / "run")
    with Pipeline() as p:
        _ = p | beam.Create([chunk(0, 2, ["invalid_json"]), chunk(1, 1, [])]) | CommitChunks(run=run, schemas=SCHEMAS)
    markers = ledger.read_markers(run)
    shard = tmp_path / "run" / "documents" / markers[1]["files"]["documents"]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 1
    shard.write_bytes(bytes(data))
    (tmp_path / "run" / "rejected" / "part-stray.parquet").write_bytes(b"x")
    found = ledger.problems(run, [0], markers, tuple(SCHEMAS))
    assert found == [
        f"chunk 000000-000001: documents/{shard.name} is not what its chunk wrote (size or SHA-256 differ)",
        "rejected/part-stray.parquet was not written by any chunk of this run",
    ]
    json.dumps(found)  # plain strings: what refsift verify prints


def test_a_write_killed_midway_leaves_a_temporary_file_the_end_of_the_job_drops(tmp_path):
    """A worker killed while writing leaves `part-...parquet.tmp-XXXX`; the runner runs its
    chunk again elsewhere. Once every worker is done that file is no shard: it is dropped,
    and the ledger finds nothing wrong (any other stray file it still names)."""
    run = str(tmp_path / "run")
    with Pipeline() as p:
        _ = p | beam.Create([chunk(0, 2, []), chunk(1, 1, [])]) | CommitChunks(run=run, schemas=SCHEMAS)
    markers = ledger.read_markers(run)
    leftover = tmp_path / "run" / "documents" / f"{markers[0]['files']['documents']}.tmp-56132b66"
    leftover.write_bytes(b"half a shard")
    assert ledger.problems(run, [0], markers, tuple(SCHEMAS)) == [
        f"documents/{leftover.name} was not written by any chunk of this run"
    ]
    ledger.drop_temporary(run, tuple(SCHEMAS))
    assert not leftover.exists() and ledger.problems(run, [0], markers, tuple(SCHEMAS)) == []
