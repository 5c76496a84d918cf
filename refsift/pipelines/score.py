"""The scoring pipeline: read -> tokenize into windows -> score under each role -> write
shards; then, on the launcher, the DuckDB catalog, the manifest and the conservation check.

Run it with `refsift score` (see `refsift score --help`) or `refsift.pipelines.score.run`.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

import refsift
from refsift import catalog, models
from refsift.config import ScoreConfig
from refsift.errors import RefsiftError
from refsift.schemas import REJECTED_SCHEMA, examples_schema, tokens_schema
from refsift.transforms import Fields, ReadCorpus, ScoreTokens, SummarizeExamples, TokenizeWindows, WriteShards
from refsift.transforms.read_corpus import is_saved_dataset

TABLES = ("tokens", "examples", "rejected")


def table_schemas(roles: list[str]) -> dict:
    return {"tokens": tokens_schema(roles), "examples": examples_schema(roles), "rejected": REJECTED_SCHEMA}


def build(pipeline: beam.Pipeline, cfg: ScoreConfig) -> None:
    """Adds the scoring steps for `cfg` to `pipeline`."""
    roles = list(cfg.roles)
    schemas = table_schemas(roles)
    fields = Fields(text=cfg.text_field, id=cfg.id_field, source=cfg.source_field)
    read = pipeline | "ReadCorpus" >> ReadCorpus(
        inputs=list(cfg.inputs),
        format=cfg.format,
        fields=fields,
        text_per_line=cfg.text_per_line,
        hf_split=cfg.hf_split,
    )
    tokenized = read["documents"] | "TokenizeWindows" >> TokenizeWindows(
        tokenizer=cfg.model, max_length=cfg.max_length, context=cfg.context, trust_remote_code=cfg.trust_remote_code
    )
    windows = tokenized["windows"]
    for role, spec in cfg.roles.items():
        windows = windows | f"ScoreTokens[{role}]" >> ScoreTokens(
            role=role,
            model=spec,
            batch_size=cfg.batch_size,
            device=cfg.device,
            dtype=cfg.dtype,
            trust_remote_code=cfg.trust_remote_code,
        )
    examples = {"documents": read["documents"], "windows": windows} | "SummarizeExamples" >> SummarizeExamples(
        roles=roles, checkpoints=cfg.checkpoint_names
    )
    rejected = (read["rejected"], tokenized["rejected"]) | "Rejected" >> beam.Flatten()
    for table, rows in (("tokens", windows), ("examples", examples), ("rejected", rejected)):
        rows | f"Write[{table}]" >> WriteShards(directory=f"{cfg.out}/{table}", schema=schemas[table])


def resolve_format(cfg: ScoreConfig) -> ScoreConfig:
    """`--format auto` with saved Hugging Face datasets as inputs means `hf`."""
    if cfg.format == "auto" and all(is_saved_dataset(i) for i in cfg.inputs):
        return replace(cfg, format="hf")
    return cfg


def check_inputs(cfg: ScoreConfig) -> None:
    """Every file pattern must match files, before any model is loaded."""
    if cfg.format == "hf":
        return
    for pattern in cfg.inputs:
        try:
            matched = FileSystems.match([pattern])[0].metadata_list
        except Exception as err:  # Beam raises BeamIOError with nested causes
            raise RefsiftError(f"cannot read input {pattern}: {err}") from None
        if not matched:
            raise RefsiftError(f"input {pattern} matches no file")
        directories = [m.path for m in matched if catalog.is_local(m.path) and Path(m.path).is_dir()]
        if directories:
            raise RefsiftError(
                f"input {directories[0]} is a directory: give a glob such as {directories[0]}/*.jsonl "
                "(or --format hf for a dataset saved with save_to_disk)"
            )


def prepare_out(out: str, overwrite: bool) -> None:
    """An empty output directory: refuses a non-empty one unless `overwrite`, then clears it."""
    if catalog.is_local(out):
        path = Path(catalog.local_path(out))
        if path.exists() and any(path.iterdir()):
            if not overwrite:
                raise RefsiftError(f"{out} is not empty; pass --overwrite to replace it")
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        return
    existing = [m.path for m in FileSystems.match([f"{out.rstrip('/')}/**"])[0].metadata_list]
    if existing and not overwrite:
        raise RefsiftError(f"{out} is not empty; pass --overwrite to replace it")
    if existing:
        FileSystems.delete(existing)


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Beam options from the arguments refsift passed through; DirectRunner unless told.

    Beam only logs a warning for an option it does not know, so a typo such as
    `--max-lenght` would be lost silently: unknown options are refused here instead.
    """
    parsers = []
    PipelineOptions(beam_args).get_all_options(add_extra_args_fn=parsers.append)
    _, unknown = parsers[0].parse_known_args(beam_args)
    unknown = [arg for arg in unknown if arg.startswith("-")]
    if unknown:
        raise RefsiftError(f"unrecognized arguments: {' '.join(unknown)}")
    if not any(arg.startswith("--runner") for arg in beam_args):
        beam_args = ["--runner=DirectRunner", *beam_args]
    return PipelineOptions(beam_args)


def counter(result, name: str) -> int | None:
    """A Beam counter's total, or None when the runner does not report it."""
    try:
        found = result.metrics().query(MetricsFilter().with_name(name))["counters"]
    except Exception:  # some runners do not support metrics queries
        return None
    if not found:
        return 0
    return sum((c.committed if c.committed is not None else c.attempted) for c in found)


def read_column(out: str, table: str, column: str) -> list:
    values = []
    for meta in FileSystems.match([f"{out}/{table}/*.parquet"])[0].metadata_list:
        with FileSystems.open(meta.path) as handle:
            values += pq.read_table(handle, columns=[column]).column(column).to_pylist()
    return values


def count(out: str, result) -> dict:
    """Counts from the written shards, and the reader's own count of records read."""
    reasons = read_column(out, "rejected", "reason")
    scored_tokens = read_column(out, "examples", "n_tokens")
    return {
        "read": counter(result, "documents_read"),
        "scored": len(scored_tokens),
        "rejected": len(reasons),
        "rejected_by_reason": {r: reasons.count(r) for r in sorted(set(reasons))},
        "windows": len(read_column(out, "tokens", "window")),
        "tokens_scored": sum(scored_tokens),
    }


def write_catalog(out: str, roles: list[str]) -> None:
    """Builds the catalog on the launcher; a remote run gets a copy uploaded beside its shards."""
    schemas = table_schemas(roles)
    if catalog.is_local(out):
        catalog.build(catalog.local_path(out), schemas, roles)
        return
    # Remote: the views are relative, so a catalog built over empty local tables is valid
    # once it sits in the run directory (copy the run locally to query it).
    with tempfile.TemporaryDirectory() as tmp:
        path = catalog.build(tmp, schemas, roles)
        with FileSystems.create(f"{out}/{catalog.CATALOG}") as dst, open(path, "rb") as src:
            dst.write(src.read())


def versions() -> dict:
    import torch
    import transformers

    return {
        "refsift": refsift.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "apache_beam": beam.__version__,
    }


def run(cfg: ScoreConfig, beam_args: list[str] = ()) -> dict:
    """Scores `cfg.inputs` into `cfg.out`; returns the manifest (also written as manifest.json).

    Raises RefsiftError before any work for bad inputs or roles that do not share a
    tokenizer, and after the run if documents were lost (read != scored + rejected).
    """
    started = time.time()
    options = pipeline_options(list(beam_args))
    cfg = resolve_format(cfg)
    check_inputs(cfg)
    fingerprint = models.check_shared_tokenizer(cfg.roles, trust_remote_code=cfg.trust_remote_code)
    prepare_out(cfg.out, cfg.overwrite)
    pipeline = beam.Pipeline(options=options)
    build(pipeline, cfg)
    result = pipeline.run()
    result.wait_until_finish()

    write_catalog(cfg.out, list(cfg.roles))
    counts = count(cfg.out, result)
    manifest = {
        "refsift_version": refsift.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": sys.argv,
        "roles": {role: models.provenance(spec) for role, spec in cfg.roles.items()},
        "tokenizer": {"spec": cfg.model, "vocab_fingerprint": fingerprint},
        "settings": {k: v for k, v in asdict(cfg).items() if k not in ("model", "reference", "finetuned")},
        "runner": options.view_as(beam.options.pipeline_options.StandardOptions).runner,
        "versions": versions(),
        "counts": counts,
        "wall_time_s": round(time.time() - started, 2),
    }
    with FileSystems.create(f"{cfg.out}/manifest.json") as handle:
        handle.write(json.dumps(manifest, indent=2, default=str).encode())
    if counts["read"] is not None and counts["read"] != counts["scored"] + counts["rejected"]:
        raise RefsiftError(
            f"conservation failed: read {counts['read']} != scored {counts['scored']} + rejected {counts['rejected']}"
        )
    return manifest
