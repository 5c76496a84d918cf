"""The reading steps every chunk job starts with (the index pass, then chunks of documents
and rejections), and the copies a dedup run removed, which a reading skips with a reason.
"""

from __future__ import annotations

from dataclasses import replace

import apache_beam as beam
from apache_beam.pvalue import AsDict, AsSingleton

from refsift import catalog
from refsift.corpus.tasks import Task, is_saved_dataset
from refsift.errors import RefsiftError
from refsift.jobs import progress, rundir
from refsift.transforms.index_corpus import IndexCorpus
from refsift.transforms.read_corpus import ReadCorpus
from refsift.transforms.read_parquet import ReadParquet


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
