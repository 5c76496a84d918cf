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
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.pvalue import AsDict, AsSingleton

import refsift
from refsift import catalog, models, progress, rundir
from refsift.config import RUNTIME_SETTINGS, ScoreConfig
from refsift.corpus.tasks import Task, is_saved_dataset, plan_tasks
from refsift.errors import RefsiftError
from refsift.schemas import REJECTED_SCHEMA, examples_schema, tokens_schema
from refsift.transforms import ReadCorpus, ScoreTokens, SummarizeExamples, TokenizeWindows
from refsift.transforms.commit_chunks import MARKERS, TABLES, CommitChunks
from refsift.transforms.index_corpus import IndexCorpus

PLAN = "_plan.json"
log = logging.getLogger("refsift")


def table_schemas(roles: list[str]) -> dict:
    return {"tokens": tokens_schema(roles), "examples": examples_schema(roles), "rejected": REJECTED_SCHEMA}


def build(pipeline: beam.Pipeline, cfg: ScoreConfig, tasks: list[Task], done: dict[int, set[int]] = None) -> None:
    """Adds the scoring steps for `cfg` to `pipeline`; `done` maps tasks to committed chunks."""
    done = done or {}
    complete = {t for t, chunks in done.items() if chunks == {"all"}}
    roles = list(cfg.roles)
    everything = pipeline | "Tasks" >> beam.Create(tasks) | "Distribute" >> beam.Reshuffle()
    index = everything | "IndexCorpus" >> IndexCorpus(
        fields=cfg.fields, text_per_line=cfg.text_per_line, hf_split=cfg.hf_split
    )
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
            text_per_line=cfg.text_per_line,
            hf_split=cfg.hf_split,
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


def read_markers(out: str) -> list[dict]:
    markers = []
    for meta in FileSystems.match([rundir.join(out, MARKERS, "*.json")])[0].metadata_list:
        markers.append(rundir.read_json(meta.path))
    return sorted(markers, key=lambda m: (m["task"], m["chunk"]))


def committed(markers: list[dict]) -> dict[int, set]:
    """Task -> its committed chunk indices, or {"all"} for a task whose every chunk is."""
    by_task: dict[int, list[dict]] = {}
    for marker in markers:
        by_task.setdefault(marker["task"], []).append(marker)
    done = {}
    for task, found in by_task.items():
        chunks = {m["chunk"] for m in found}
        final = [m["chunk"] for m in found if m["final"]]
        done[task] = {"all"} if final and chunks == set(range(final[0] + 1)) else chunks
    return done


def _files(out: str, table: str) -> set[str]:
    found = FileSystems.match([rundir.join(out, table, "*")])[0].metadata_list
    return {m.path.rsplit("/", 1)[-1] for m in found}


def tidy(out: str, markers: list[dict]) -> None:
    """Before resuming: removes what a killed attempt left half done (shards of chunks that
    have no marker, temporary files) and its progress files."""
    expected = {table: {m["files"][table] for m in markers if table in m["files"]} for table in TABLES}
    stale = []
    for table in TABLES:
        stale += [rundir.join(out, table, name) for name in _files(out, table) - expected[table]]
    stale += [m.path for m in FileSystems.match([rundir.join(out, progress.DIRECTORY, "*")])[0].metadata_list]
    stale += [m.path for m in FileSystems.match([rundir.join(out, MARKERS, "*.tmp")])[0].metadata_list]
    if stale:
        FileSystems.delete(stale)


def _rows(path: str) -> int:
    with FileSystems.open(path) as handle:
        return pq.read_metadata(handle).num_rows


def verify(out: str, tasks: list[Task], markers: list[dict]) -> dict:
    """The run's counts, checked: every task complete, every shard present with the rows its
    marker says, no stray shard, and read = scored + rejected."""
    done = committed(markers)
    unfinished = [t.index for t in tasks if done.get(t.index) != {"all"}]
    if unfinished:
        raise RefsiftError(f"{len(unfinished)} of {len(tasks)} tasks did not finish; run again with --resume")
    for table in TABLES:
        expected = {m["files"][table] for m in markers if table in m["files"]}
        if _files(out, table) != expected:
            raise RefsiftError(f"{out}/{table} holds shards that no completed chunk wrote; is another job writing it?")
    for m in markers:
        rejected = sum(m["rejected"].values())
        for table, rows in (("examples", m["scored"]), ("rejected", rejected)):
            if table in m["files"] and _rows(rundir.join(out, table, m["files"][table])) != rows:
                raise RefsiftError(f"{out}/{table}/{m['files'][table]} does not hold the {rows} rows it should")
    reasons: dict[str, int] = {}
    for m in markers:
        for reason, n in m["rejected"].items():
            reasons[reason] = reasons.get(reason, 0) + n
    counts = {
        "read": sum(m["read"] for m in markers),
        "scored": sum(m["scored"] for m in markers),
        "rejected": sum(reasons.values()),
        "rejected_by_reason": dict(sorted(reasons.items())),
        "windows": sum(m["windows"] for m in markers),
        "tokens_scored": sum(m["tokens_scored"] for m in markers),
        "chunks": len(markers),
    }
    indexed = (rundir.read_json(rundir.join(out, progress.DIRECTORY, progress.TOTAL)) or {}).get("records")
    if counts["read"] != counts["scored"] + counts["rejected"] or indexed != counts["read"]:
        raise RefsiftError(
            f"conservation failed: the index pass counted {indexed} records, the scoring pass read {counts['read']} "
            f"= scored {counts['scored']} + rejected {counts['rejected']}"
        )
    return counts


def write_catalog(out: str, roles: list[str]) -> None:
    """Builds the catalog on the launcher; a remote run gets a copy uploaded beside its shards."""
    schemas = table_schemas(roles)
    views = {"token_scores": catalog.token_scores_sql(roles)}
    if rundir.is_local(out):
        catalog.build(rundir.local_path(out), schemas, views)
        return
    from refsift.transforms.commit_chunks import write_table

    for table, schema in schemas.items():  # every view needs a shard to read its columns from
        if not _files(out, table):
            write_table(schema.empty_table(), rundir.join(out, table, "part-empty.parquet"))
    with tempfile.TemporaryDirectory() as tmp:
        path = catalog.build(tmp, schemas, views)
        with FileSystems.create(rundir.join(out, catalog.CATALOG)) as dst, open(path, "rb") as src:
            dst.write(src.read())


def _protected(cfg: ScoreConfig, identity: list[dict]) -> list[str]:
    return [i["path"] for i in identity if rundir.is_local(i["path"])]


def run(cfg: ScoreConfig, beam_args: list[str] = ()) -> dict:
    """Scores `cfg.inputs` into `cfg.out`, or finishes an interrupted run (`cfg.resume`);
    returns the manifest (also written as manifest.json).

    Raises RefsiftError before any work for bad inputs, models or settings, and after the
    run if its counts do not add up.
    """
    started = time.time()
    options = pipeline_options(list(beam_args))
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
            if (rundir.marker(out) or {}).get("status") == "complete":
                return {**saved, "already_complete": True}
            tasks = [Task(**t) for t in rundir.read_json(rundir.join(out, PLAN))["tasks"]]
            markers = read_markers(out)
            tidy(out, markers)
            manifest = {**saved, "resumed": saved.get("resumed", 0) + 1}
            log.info(f"resuming {cfg.out}: {len(markers)} chunks already committed")
        else:
            rundir.write_json(rundir.join(out, PLAN), {"tasks": [t.to_json() for t in tasks]})
            rundir.write_json(rundir.join(out, "manifest.json"), {**manifest, "status": "running"})
        pipeline = beam.Pipeline(options=options)
        build(pipeline, cfg, tasks, committed(markers))
        done_before = sum(m["read"] for m in markers)
        with progress.Line(out, list(cfg.roles), done_before=done_before):
            pipeline.run().wait_until_finish()
        counts = verify(out, tasks, read_markers(out))
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
