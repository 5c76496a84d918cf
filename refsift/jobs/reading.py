"""The reading steps every chunk job starts with (the index pass, then chunks of documents
and rejections), and the copies a dedup run removed, which a reading skips with a reason.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import replace

import apache_beam as beam
from apache_beam.pvalue import AsDict, AsSingleton

from refsift import catalog
from refsift.corpus.formats import chunked, payloads
from refsift.corpus.tasks import Task, is_saved_dataset, plan_tasks, source_name
from refsift.errors import RefsiftError
from refsift.jobs import progress, rundir
from refsift.transforms.index_corpus import IndexCorpus
from refsift.transforms.read_corpus import ReadCorpus, read_chunk
from refsift.transforms.read_parquet import ReadParquet

log = logging.getLogger("refsift")


def resolve_format(cfg):
    """`--format auto` with saved Hugging Face datasets as inputs means `hf`."""
    if cfg.format == "auto" and all(is_saved_dataset(i) for i in cfg.inputs):
        return replace(cfg, format="hf")
    return cfg


def read_chunks(pipeline: beam.Pipeline, out: str, tasks: list[Task], done: dict, cfg) -> beam.PCollection:
    """Tasks -> chunks of documents and rejections, skipping what is committed: the index
    pass (ids, row counts, the record total for the progress line) and the reading pass.
    Every chunk job starts so; `cfg` gives `fields`, `reading` and `chunk_size`."""
    complete = {t for t, chunks in done.items() if chunks == {"all"}}
    everything = pipeline | "Tasks" >> beam.Create(tasks) | "Distribute" >> beam.Reshuffle()
    skip = AsDict(skipped(pipeline, cfg.dedup)) if cfg.dedup else None
    index = everything | "IndexCorpus" >> IndexCorpus(fields=cfg.fields, reading=cfg.reading)
    index["records"] | "RecordTotal" >> beam.Map(lambda n: progress.write_total(out, n))
    return (
        everything
        | "Pending" >> beam.Filter(lambda task: task.index not in complete)
        | "ReadCorpus"
        >> ReadCorpus(
            fields=cfg.fields,
            first_rows=AsSingleton(index["first_rows"]),
            duplicates=AsDict(index["duplicates"]),
            chunk_size=cfg.chunk_size,
            reading=cfg.reading,
            done={t: c for t, c in done.items() if t not in complete},
            skip=skip,
        )
    )


def skipped(pipeline: beam.Pipeline, dedup: str) -> beam.PCollection:
    """(doc_id, why) of every copy a dedup run did not keep, read from its `duplicates`."""

    def why(row: dict) -> tuple[str, str]:
        return row["doc_id"], copy_of(dedup, row["cluster_id"], row["exact"], row["jaccard"])

    return (
        pipeline
        | "ReadDuplicates"
        >> ReadParquet(
            rundir.join(dedup, "duplicates", "*.parquet"), columns=["doc_id", "cluster_id", "kept", "exact", "jaccard"]
        )
        | "NotKept" >> beam.Filter(lambda row: not row["kept"])
        | "Why" >> beam.Map(why)
    )


def removed(dedup: str) -> dict[str, str]:
    """doc_id -> why, of every copy a (local) dedup run did not keep: for the commands that
    read documents in one process (distill, attribute)."""
    rundir.require(dedup, "dedup")
    rows = catalog.query(dedup, "SELECT doc_id, cluster_id, exact, jaccard FROM duplicates WHERE NOT kept")[1]
    return {doc_id: copy_of(dedup, *rest) for doc_id, *rest in rows}


def copy_of(dedup: str, kept: str, exact: bool, jaccard: float | None) -> str:
    """The detail of a `near_duplicate` rejection."""
    how = "an exact copy" if exact else f"estimated Jaccard {jaccard:.2f}"
    return f"a copy of {kept} ({how}), kept by {dedup}"


READING_SETTINGS = ("format", "text_field", "id_field", "prompt_field", "messages_field", "text_per_line", "hf_split")


def check_dedup(cfg, identity: list[dict]) -> None:
    """With `cfg.dedup`: refuses a dedup run that was not made from these very inputs, read
    the same way (its document ids would not be these)."""
    if not cfg.dedup:
        return
    rundir.require(cfg.dedup, "dedup")
    made = rundir.read_json(rundir.join(cfg.dedup, "manifest.json")) or {}
    inputs = {i["path"]: i for i in made.get("inputs", [])}
    for item in identity:
        if inputs.get(item["path"]) != item:
            raise RefsiftError(
                f"--dedup {cfg.dedup} was not made from {item['path']} as it is now (missing, or changed since): "
                "run refsift dedup on these inputs"
            )
    for name in READING_SETTINGS:
        if made["settings"].get(name) != getattr(cfg, name):
            raise RefsiftError(f"--dedup {cfg.dedup} read the inputs with another --{name.replace('_', '-')}")


def read_documents(
    inputs: list[str], cfg, limit: int, role: str, *, seed: int = 0
) -> tuple[dict[str, list[dict]], Counter]:
    """Documents of `inputs` by source (a seeded sample of at most `limit` per source when
    `limit` > 0), and the records that were not documents, counted by reason and named in a
    warning: the commands that read their documents in one process (attribute, ablate).
    `cfg` says how to read (`refsift.config.CorpusOptions`); `role` ("target", "sources",
    "eval") names the set and, with `seed`, seeds its sample.

    Refuses, in one line, an input file that yields no document (a wrong --text-field, say:
    its source would silently vanish from the ranking) and two files that would merge into
    one source because their names share a stem.
    """
    tasks, _ = plan_tasks(inputs, format=cfg.format, text_per_line=cfg.text_per_line, task_size=2**62)
    if not cfg.source_field and role == "sources":
        by_name: dict[str, str] = {}
        for task in tasks:
            name = source_name(task.input)
            if by_name.setdefault(name, task.input) != task.input:
                raise RefsiftError(
                    f"sources {by_name[name]} and {task.input} would both be source {name!r} (a source is named by "
                    "its file's stem): rename one, or name sources with --source-field"
                )
    skip = removed(cfg.dedup) if cfg.dedup else {}
    rng = random.Random(f"{seed}:{role}")
    kept: dict[str, list[dict]] = {}
    seen: dict[str, int] = {}
    rejected: Counter = Counter()
    for task in tasks:
        items = payloads(task, cfg.fields.columns(), cfg.reading)
        documents, lost = 0, Counter()
        for index, final, part in chunked(items, 2**20):
            chunk = read_chunk(task, index, final, part, cfg.fields, 0, {}, skip)
            lost.update(row["reason"] for row in chunk.rejected)
            documents += len(chunk.documents)
            for doc in chunk.documents:  # reservoir sampling: every document equally likely to stay
                name = doc["source"]
                seen[name] = seen.get(name, 0) + 1
                bucket = kept.setdefault(name, [])
                if not limit or len(bucket) < limit:
                    bucket.append(doc)
                elif (j := rng.randrange(seen[name])) < limit:
                    bucket[j] = doc
        if not documents:
            why = ", ".join(f"{reason} {n}" for reason, n in sorted(lost.items())) or "it is empty"
            what = {"target": "target", "eval": "held-out file"}.get(role, "source")
            raise RefsiftError(f"{what} {task.input} yields no document ({why}): check --text-field and --format")
        rejected.update(lost)
    if rejected:
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(rejected.items()))
        log.warning("%s: %d records are not documents and were left out (%s)", role, rejected.total(), reasons)
    return kept, rejected
