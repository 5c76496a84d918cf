"""The scoring pipeline: read -> tokenize into windows -> score under each role -> write
shards, in chunks that are committed one by one; then, on the launcher, the checks, the
DuckDB catalog and the manifest.

    tasks ──> IndexCorpus (ids, row counts) ──────────────── side inputs ──┐
    tasks not yet done ──> ReadCorpus ──> TokenizeWindows ──> ScoreTokens[role] ... ──>
        SummarizeExamples ──> CommitChunks (shards, then a completion marker per chunk)

Where memory is bounded, and why. Only two things cross a shuffle: the task list (one small
record per file or byte range) and, in the index pass, (id, position) pairs. Documents,
their text and their tokens never do: each task is read, tokenized, scored and written by
one worker, chunk after chunk, through fused steps that hand a chunk on as soon as it is
made, so a worker holds one chunk (about `chunk_size` bytes of input, 1 MiB by default,
with its windows and losses as numpy arrays) and its models. A document's summary is built
in the chunk that holds all its windows, so nothing is joined. What grows with the corpus
is the index of ids (records with an id field) and the side inputs derived from it (the
repeated ids, and one number per task).

Resuming. The plan (`_plan.json`) and `_chunks/<task>-<chunk>.json` completion markers say
what is done; chunk boundaries depend only on the input, so `--resume` re-reads the tasks
that are not complete, skips their committed chunks without parsing them, and scores the
rest: every document once, the same losses, conservation exact. A resumed run must have the
same inputs (paths, sizes, modification times), models (weights hashes) and settings; only
`--batch-size` may change.

Run it with `refsift score` (see `refsift score --help`) or `refsift.pipelines.score.run`.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.pvalue import AsDict, AsSingleton

import refsift
from refsift import catalog, engine, models, progress, rundir
from refsift.config import RUNTIME_SETTINGS, ScoreConfig
from refsift.corpus.tasks import Task, is_saved_dataset, plan_tasks
from refsift.errors import RefsiftError
from refsift.schemas import REJECTED_SCHEMA, examples_schema, tokens_schema
from refsift.transforms import ReadCorpus, ScoreTokens, SummarizeExamples, TokenizeWindows
from refsift.transforms.commit_chunks import TABLES, CommitChunks
from refsift.transforms.index_corpus import IndexCorpus

log = logging.getLogger("refsift")


def table_schemas(roles: list[str]) -> dict:
    return {"tokens": tokens_schema(roles), "examples": examples_schema(roles), "rejected": REJECTED_SCHEMA}


def build(pipeline: beam.Pipeline, cfg: ScoreConfig, tasks: list[Task], done: dict[int, set[int]] = None) -> None:
    """Adds the scoring steps for `cfg` to `pipeline`; `done` maps tasks to committed chunks."""
    done = done or {}
    complete = {t for t, chunks in done.items() if chunks == {"all"}}
    roles = list(cfg.roles)
    everything = pipeline | "Tasks" >> beam.Create(tasks) | "Distribute" >> beam.Reshuffle()
    index = everything | "IndexCorpus" >> IndexCorpus(fields=cfg.fields, reading=cfg.reading)
    index["records"] | "RecordTotal" >> beam.Map(lambda n: progress.write_total(cfg.out, n))
    chunks = (
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
        )
        | "TokenizeWindows"
        >> TokenizeWindows(
            tokenizer=cfg.model,
            max_length=cfg.max_length,
            context=cfg.context,
            prefix=cfg.prefix,
            trust_remote_code=cfg.trust_remote_code,
        )
    )
    for role, spec in cfg.roles.items():
        chunks = chunks | f"ScoreTokens[{role}]" >> ScoreTokens(
            role=role,
            model=spec,
            batch_size=cfg.batch_size,
            max_length=cfg.max_length,
            device=cfg.device,
            dtype=cfg.dtype,
            trust_remote_code=cfg.trust_remote_code,
            run=cfg.out,
        )
    (
        chunks
        | "SummarizeExamples" >> SummarizeExamples(roles=roles, learning=cfg.learning)
        | "CommitChunks" >> CommitChunks(run=cfg.out, schemas=table_schemas(roles))
    )


def resolve_format(cfg: ScoreConfig) -> ScoreConfig:
    """`--format auto` with saved Hugging Face datasets as inputs means `hf`."""
    if cfg.format == "auto" and all(is_saved_dataset(i) for i in cfg.inputs):
        return replace(cfg, format="hf")
    return cfg


def check_models(cfg: ScoreConfig) -> dict:
    """Everything about the roles that can be refused before any work: tokenizers shared,
    loadable and able to encode, the prefix and the chat template available, windows within
    every model's positions, the device present. Returns the manifest's tokenizer entry."""
    from refsift.kernels.encode import prefix_id

    models.check_device(cfg.device)
    fingerprint = models.check_shared_tokenizer(cfg.roles, trust_remote_code=cfg.trust_remote_code)
    tokenizer = models.load_tokenizer(cfg.model, trust_remote_code=cfg.trust_remote_code)
    try:
        prefix = prefix_id(tokenizer, cfg.prefix)
    except ValueError as err:
        raise RefsiftError(str(err)) from None
    if cfg.messages_field and not tokenizer.chat_template:
        raise RefsiftError(f"--messages-field: the tokenizer of {cfg.model} has no chat template")
    for role, spec in cfg.roles.items():
        models.check_weights(spec, tokenizer, trust_remote_code=cfg.trust_remote_code)
        limit = models.position_limit(spec, trust_remote_code=cfg.trust_remote_code)
        if limit is not None and cfg.max_length > limit:
            raise RefsiftError(f"--max-length {cfg.max_length} is more than {spec} ({role}) takes: at most {limit}")
    return {"spec": cfg.model, "vocab_fingerprint": fingerprint, "prefix_token_id": prefix}


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


def settings(cfg: ScoreConfig) -> dict:
    return {k: v for k, v in asdict(cfg).items() if k not in ("model", "reference", "finetuned")}


def differences(saved: dict, current: dict) -> list[str]:
    """What keeps a run from being resumed with the current command: changed settings,
    inputs or model weights."""
    found = []
    for key, value in current["settings"].items():
        old = saved["settings"].get(key)
        if key not in RUNTIME_SETTINGS and json.loads(json.dumps(old)) != json.loads(json.dumps(value)):
            found.append(f"--{key.replace('_', '-')} was {old!r}, now {value!r}")
    identity = ("weights_sha256", "revision")
    for role in sorted(set(saved["roles"]) | set(current["roles"])):
        old, new = saved["roles"].get(role), current["roles"].get(role)
        if new is None:
            found.append(f"the run was also scored with a {role} model ({old.get('spec')}): give it again")
        elif old is None:
            found.append(f"the run has no {role} model")
        elif {k: old.get(k) for k in identity} != {k: new.get(k) for k in identity}:
            found.append(f"the {role} model is not the one the run was scored with ({old.get('spec')})")
    if saved["tokenizer"]["vocab_fingerprint"] != current["tokenizer"]["vocab_fingerprint"]:
        found.append("the tokenizer changed")
    old_inputs = {i["path"]: i for i in saved["inputs"]}
    new_inputs = {i["path"]: i for i in current["inputs"]}
    for path in sorted(set(old_inputs) | set(new_inputs)):
        if path not in new_inputs:
            found.append(f"input {path} is gone (or no longer matched)")
        elif path not in old_inputs:
            found.append(f"input {path} was not part of the run")
        elif old_inputs[path] != new_inputs[path]:
            found.append(f"input {path} changed since the run started (size or modification time)")
    return found


def write_catalog(out: str, roles: list[str]) -> None:
    """Builds the catalog on the launcher; a remote run gets a copy uploaded beside its shards."""
    schemas = table_schemas(roles)
    views = {"token_scores": catalog.token_scores_sql(roles)}
    if rundir.is_local(out):
        catalog.build(rundir.local_path(out), schemas, views)
        return
    from refsift.transforms.commit_chunks import write_table

    for table, schema in schemas.items():  # every view needs a shard to read its columns from
        if not engine.files(out, table):
            write_table(schema.empty_table(), rundir.join(out, table, catalog.EMPTY_SHARD))
    with tempfile.TemporaryDirectory() as tmp:
        path = catalog.build(tmp, schemas, views)
        with FileSystems.create(rundir.join(out, catalog.CATALOG)) as dst, open(path, "rb") as src:
            dst.write(src.read())


def _protected(cfg: ScoreConfig, identity: list[dict]) -> list[str]:
    """What the run reads and must never be written over: its local inputs and models."""
    local_models = [models.local_path(spec) for spec in cfg.roles.values()]
    return [i["path"] for i in identity if rundir.is_local(i["path"])] + [m for m in local_models if m]


def run(cfg: ScoreConfig, beam_args: list[str] = (), on_start=None) -> dict:
    """Scores `cfg.inputs` into `cfg.out`, or finishes an interrupted run (`cfg.resume`);
    returns the manifest (also written as manifest.json). `on_start(cfg)` is called once
    everything that can be refused has been checked, before the job starts.

    Raises RefsiftError before any work for bad inputs, models or settings; when the job
    fails or is interrupted (saying how to resume); and after the job if its shards or
    counts do not add up.
    """
    started = time.time()
    options = engine.pipeline_options(list(beam_args))
    cfg = resolve_format(cfg)
    tasks, identity = plan_tasks(
        list(cfg.inputs), format=cfg.format, text_per_line=cfg.text_per_line, task_size=cfg.task_size
    )
    tokenizer = check_models(cfg)
    manifest = {
        "refsift_version": refsift.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": sys.argv,
        "roles": {role: models.provenance(spec) for role, spec in cfg.roles.items()},
        "tokenizer": tokenizer,
        "settings": settings(cfg),
        "inputs": identity,
        "tasks": len(tasks),
        "tables": list(TABLES),
        "runner": options.view_as(StandardOptions).runner,
        "versions": versions(),
    }
    with rundir.claim(
        cfg.out, kind="run", overwrite=cfg.overwrite, resume=cfg.resume, protect=_protected(cfg, identity)
    ) as claim:
        out = claim.path if rundir.is_local(cfg.out) else cfg.out
        cfg = replace(cfg, out=out)
        saved = rundir.read_json(rundir.join(out, "manifest.json")) if claim.resumed else None
        markers: list[dict] = []
        if saved is not None:
            found = differences(saved, manifest)
            if found:
                raise RefsiftError(
                    f"cannot resume {cfg.out}: {found[0]}" + (f" (and {len(found) - 1} more)" if len(found) > 1 else "")
                )
            tasks = [Task(**t) for t in rundir.read_json(rundir.join(out, engine.PLAN))["tasks"]]
            complete = (rundir.marker(out) or {}).get("status") == "complete"
            kept = engine.read_markers(out)
            markers = engine.resume_markers(out, TABLES)
            if complete and len(markers) == len(kept):
                return {**saved, "already_complete": True}
            claim.reopen()
            manifest = {**saved, "resumed": saved.get("resumed", 0) + 1}
            log.info(f"resuming {cfg.out}: {len(markers)} chunks already committed")
        else:
            rundir.write_json(rundir.join(out, engine.PLAN), {"tasks": [t.to_json() for t in tasks]})
            rundir.write_json(rundir.join(out, "manifest.json"), {**manifest, "status": "running"})
        if on_start:
            on_start(cfg)
        pipeline = beam.Pipeline(options=options)
        build(pipeline, cfg, tasks, engine.committed(markers))
        done_before = sum(m["read"] for m in markers)
        with progress.Line(out, list(cfg.roles), done_before=done_before):
            engine.run_job(pipeline, out)
        counts = engine.verify(out, tasks, engine.read_markers(out), TABLES)
        write_catalog(out, list(cfg.roles))
        manifest.update(
            status="complete",
            counts=counts,
            wall_time_s=round(manifest.get("wall_time_s", 0) + time.time() - started, 2),
        )
        rundir.write_json(rundir.join(out, "manifest.json"), manifest)
        FileSystems.delete([rundir.join(out, progress.DIRECTORY)])
        claim.complete()
    return manifest
