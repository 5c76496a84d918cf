"""Near-duplicate removal: `refsift dedup`, MinHash LSH as two Beam jobs on the scoring
engine, before anything is scored.

    tasks ──> IndexCorpus ─── side inputs ──┐
    tasks not yet done ──> ReadCorpus ──> MinHashDocuments ──> CommitChunks
        (documents: ids, content hash, signature, first characters; bands: sorted keys)
    then: band names ──> ClusterDuplicates ──> duplicates/*.parquet

The first job is the chunk engine's (`refsift.jobs`): tasks, chunks, markers with shard
digests, `--resume`, locks, rejected rows; a worker holds one chunk, and what leaves it
for the second job is numbers (a document number and its band keys), never text. The
second job merges the bands one per worker and resolves clusters (connected components:
chains A~B, B~C are one cluster), keeps one document per cluster by a stated rule (the
first in input order, or the longest), and writes a `duplicates` row for every member
with its cluster, the kept document and the Jaccard similarity to it estimated from the
signatures (`refsift.transforms.cluster_duplicates` says where its memory goes). Exact
duplicates (the same text up to whitespace) are clusters too, found by a content hash in
the same stage (`--method exact` finds only those).

The run directory has the catalog views `documents`, `duplicates` and `rejected` (`refsift
sql`), `report.html` shows the largest clusters side by side with what differs marked, and
`refsift score --dedup DIR` (and `classify`, `distill`, `select`) skips every copy that is
not kept, as a `near_duplicate` rejection naming the kept document.
"""

from __future__ import annotations

from dataclasses import asdict, replace

import apache_beam as beam

from refsift.config import DedupConfig
from refsift.corpus.tasks import plan_tasks
from refsift.jobs import executor, reading, rundir, runners
from refsift.schemas import REJECTED_SCHEMA
from refsift.schemas.dedup import DOCUMENTS_SCHEMA, DUPLICATES_SCHEMA, bands_schema
from refsift.transforms import WriteShards
from refsift.transforms.cluster_duplicates import ClusterDuplicates
from refsift.transforms.commit_chunks import CommitChunks
from refsift.transforms.minhash_documents import MinHashDocuments

RUNTIME_SETTINGS = ("out", "inputs", "overwrite", "resume")


def schemas(cfg: DedupConfig) -> dict:
    return {"documents": DOCUMENTS_SCHEMA, "bands": bands_schema(cfg.bands), "rejected": REJECTED_SCHEMA}


def build(pipeline: beam.Pipeline, cfg: DedupConfig, out: str, tasks, done) -> None:
    (
        reading.read_chunks(pipeline, out, tasks, done, cfg)
        | "MinHashDocuments" >> MinHashDocuments(settings=cfg.minhash, run=out)
        | "CommitChunks" >> CommitChunks(run=out, schemas=schemas(cfg))
    )


def cluster(cfg: DedupConfig, out: str, options, markers: list[dict]) -> dict:
    """The second job: clusters from the committed shards into `duplicates/`; returns the
    counts it adds to the manifest."""
    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import FileSystems

    shards = {
        t: [rundir.join(out, t, m["files"][t]) for m in markers if t in m["files"]] for t in ("bands", "documents")
    }
    directory = rundir.join(out, "duplicates")
    if FileSystems.exists(directory):  # a resumed run redoes the clustering whole
        FileSystems.delete([directory])
    pipeline = beam.Pipeline(options=options)
    (
        pipeline
        | "Bands" >> beam.Create(cfg.band_names)
        | "ClusterDuplicates" >> ClusterDuplicates(bands=shards["bands"], documents=shards["documents"], keep=cfg.keep)
        | "WriteDuplicates" >> WriteShards(directory=directory, schema=DUPLICATES_SCHEMA)
    )
    runners.run_job(pipeline, out, what="clustering")
    found = FileSystems.match([rundir.join(directory, "*.parquet")])[0].metadata_list
    counts = {"clusters": 0, "in_clusters": 0, "near_duplicates": 0, "exact_duplicates": 0}
    scored = sum(m["scored"] for m in markers)
    for meta in found:
        with FileSystems.open(meta.path, compression_type="uncompressed") as handle:
            table = pq.read_table(handle, columns=["kept", "exact"])
        kept, exact = table.column("kept").to_pylist(), table.column("exact").to_pylist()
        counts["clusters"] += sum(kept)
        counts["in_clusters"] += len(kept)
        counts["near_duplicates"] += sum(not k for k in kept)
        counts["exact_duplicates"] += sum(e and not k for k, e in zip(kept, exact))
    return {**counts, "kept": scored - counts["near_duplicates"]}


def run(cfg: DedupConfig, beam_args: list[str] = (), on_start=None) -> dict:
    """Finds near-duplicates in `cfg.inputs` into `cfg.out` (or finishes it with
    `cfg.resume`); returns the manifest, whose counts hold read = kept + near_duplicates +
    rejected."""
    options = runners.pipeline_options(list(beam_args))
    cfg = reading.resolve_format(cfg)
    tasks, identity = plan_tasks(
        list(cfg.inputs), format=cfg.format, text_per_line=cfg.text_per_line, task_size=cfg.task_size
    )
    job = executor.ChunkJob(
        out=cfg.out,
        tasks=tasks,
        identity=identity,
        settings=asdict(cfg),
        runtime=RUNTIME_SETTINGS,
        schemas=schemas(cfg),
        views={},
        build=lambda pipeline, out, tasks, done: build(pipeline, cfg, out, tasks, done),
        kind="dedup",
        per_core=True,
        record={"mode": "dedup", "minhash": {**asdict(cfg.minhash), "threshold": round(cfg.minhash.threshold(), 4)}},
        progress_roles=["minhash"],
        activity="hashing",
        protect=[i["path"] for i in identity if "://" not in i["path"]],
        versions={"apache_beam": beam.__version__},
        finish=lambda out, options, markers: cluster(cfg, out, options, markers),
        catalog={"documents": DOCUMENTS_SCHEMA, "duplicates": DUPLICATES_SCHEMA, "rejected": REJECTED_SCHEMA},
    )
    announce = (lambda out: on_start(replace(cfg, out=out))) if on_start else None
    return executor.execute(job, options, overwrite=cfg.overwrite, resume=cfg.resume, on_start=announce)
