"""`execute`: runs a command's chunk job into a run directory, or finishes an interrupted one.

A command declares its job as a `ChunkJob` (its tables, views, steps, what its manifest
records, what a resumed run must not change); `execute` claims the directory, writes the
plan and manifest, resumes from the ledger, runs the pipeline with a progress line, checks
the ledger, writes the catalog, and marks the directory complete. It knows no command by name.
"""

from __future__ import annotations

import json
import logging
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

import refsift
from refsift import catalog
from refsift.catalog import EMPTY_SHARD
from refsift.corpus.tasks import Task
from refsift.errors import RefsiftError
from refsift.jobs import console, ledger, progress, rundir
from refsift.jobs.console import plural
from refsift.jobs.ledger import PLAN
from refsift.jobs.runners import dry_run, per_core, run_job

log = logging.getLogger("refsift")


@dataclass
class ChunkJob:
    """One command's chunk job, as `execute` runs it into a run directory.

    Args:
      out: the run directory.
      tasks, identity: the planned tasks and what identifies the inputs
        (`refsift.corpus.tasks.plan_tasks`).
      settings: the command's settings as JSON values (recorded; compared on --resume).
      runtime: the settings a resumed run may change (they change speed, not results).
      schemas: the tables the chunks write, with their schemas; views: derived views.
      build: adds the job's steps: build(pipeline, out, tasks, done), `done` mapping task
        indices to committed chunks ({"all"} for a complete task).
      record: what the manifest records beyond the common entries (models, classifier).
      differences: what besides settings and inputs keeps a run from being resumed:
        differences(saved manifest, current manifest) -> lines.
      progress_roles: the token counts the progress line shows.
      activity: the progress line's first word (scoring, classifying, hashing).
      protect: local paths the job reads, never to be written over.
      versions: library versions for the manifest.
      finish: work after the chunks are verified (the clustering of a dedup run):
        finish(out, options, markers) -> counts to add to the manifest's.
      catalog: the tables of the catalog, when they are not the chunks' (default: schemas).
      kind: what the directory is (`refsift.jobs.rundir.KINDS`).
      per_core: the work holds one core per worker (MinHash, fastText), so the DirectRunner
        runs a worker process per core (`refsift.jobs.runners.per_core`); a model's work
        (torch's threads take every core) keeps one.
    """

    out: str
    tasks: list[Task]
    identity: list[dict]
    settings: dict
    runtime: tuple[str, ...]
    schemas: dict
    views: dict[str, str]
    build: Callable
    record: dict = field(default_factory=dict)
    differences: Callable[[dict, dict], list[str]] = lambda saved, current: []
    progress_roles: list[str] = field(default_factory=list)
    activity: str = "scoring"
    protect: list[str] = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    finish: Callable | None = None
    catalog: dict | None = None
    per_core: bool = False
    kind: str = "run"

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(self.schemas)


def differences(job: ChunkJob, saved: dict, current: dict) -> list[str]:
    """What keeps a run from being resumed by the current command: changed settings,
    inputs, or what the job itself compares (models, a classifier)."""
    found = []
    for key, value in current["settings"].items():
        old = saved["settings"].get(key)
        if key not in job.runtime and json.loads(json.dumps(old)) != json.loads(json.dumps(value)):
            found.append(f"--{key.replace('_', '-')} was {old!r}, now {value!r}")
    found += job.differences(saved, current)
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


def write_catalog(out: str, schemas: dict, views: dict[str, str]) -> None:
    """Builds the catalog on the launcher; a remote run gets a copy uploaded beside its shards."""
    if rundir.is_local(out):
        catalog.build(rundir.local_path(out), schemas, views)
        return
    from refsift.transforms.commit_chunks import write_table

    for table, schema in schemas.items():  # every view needs a shard to read its columns from
        if not ledger.files(out, table):
            write_table(schema.empty_table(), rundir.join(out, table, EMPTY_SHARD))
    with tempfile.TemporaryDirectory() as tmp:
        path = catalog.build(tmp, schemas, views)
        with FileSystems.create(rundir.join(out, catalog.CATALOG)) as dst, open(path, "rb") as src:
            dst.write(src.read())


def execute(job: ChunkJob, options: PipelineOptions, *, overwrite: bool, resume: bool, on_start=None) -> dict:
    """Runs a chunk job into `job.out` (or finishes an interrupted one with `resume`),
    checks it, writes the catalog; returns the manifest (also written as manifest.json).
    `on_start(out)` runs once the directory is claimed, just before the job."""
    if dry_run(options):  # build the job as Dataflow would take it; claim and write nothing
        pipeline = beam.Pipeline(options=options)
        job.build(pipeline, job.out, job.tasks, {})
        with console.worker_output():  # staging's sdist build talks on stderr
            result = pipeline.run()
        transforms = result.job.proto_pipeline.components.transforms.values()
        return {"dry_run": True, "steps": sorted(t.unique_name for t in transforms), "tasks": len(job.tasks)}
    if job.per_core:
        options = per_core(options, len(job.tasks), sum(t.size or 0 for t in job.tasks))
    started = time.time()
    manifest = {
        **rundir.header(),
        **job.record,
        "settings": job.settings,
        "inputs": job.identity,
        "tasks": len(job.tasks),
        "tables": list(job.tables),
        "runner": options.view_as(StandardOptions).runner,
        "versions": {"refsift": refsift.__version__, "python": platform.python_version(), **job.versions},
    }
    with rundir.claim(job.out, kind=job.kind, overwrite=overwrite, resume=resume, protect=job.protect) as claim:
        out = claim.path if rundir.is_local(job.out) else job.out
        tasks, markers = job.tasks, []
        saved = rundir.read_json(rundir.join(out, "manifest.json")) if claim.resumed else None
        if saved is not None:
            found = differences(job, saved, manifest)
            if found:
                more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
                raise RefsiftError(f"cannot resume {job.out}: {found[0]}{more}")
            tasks = [Task(**t) for t in rundir.read_json(rundir.join(out, PLAN))["tasks"]]
            complete = (rundir.marker(out) or {}).get("status") == "complete"
            kept = ledger.read_markers(out)
            markers = ledger.resume_markers(out, job.tables)
            if complete and len(markers) == len(kept):
                return {**saved, "already_complete": True}
            claim.reopen()
            manifest = {**saved, "resumed": saved.get("resumed", 0) + 1}
            log.info(f"resuming {job.out}: {plural(len(markers), 'chunk')} already committed")
        else:
            rundir.write_json(rundir.join(out, PLAN), {"tasks": [t.to_json() for t in tasks]})
            rundir.write_json(rundir.join(out, "manifest.json"), {**manifest, "status": "running"})
        if on_start:
            on_start(out)
        pipeline = beam.Pipeline(options=options)
        job.build(pipeline, out, tasks, ledger.committed(markers))
        done_before = sum(m["read"] for m in markers)
        with progress.Line(out, job.progress_roles, done_before=done_before, activity=job.activity):
            run_job(pipeline, out)
        markers = ledger.read_markers(out)
        ledger.drop_temporary(out, job.tables)
        counts = ledger.verify(out, tasks, markers, job.tables)
        if job.finish:
            counts.update(job.finish(out, options, markers))
        write_catalog(out, job.catalog or job.schemas, job.views)
        manifest.update(
            status="complete",
            counts=counts,
            wall_time_s=round(manifest.get("wall_time_s", 0) + time.time() - started, 2),
            attempt_wall_time_s=round(time.time() - started, 2),
        )
        rundir.write_json(rundir.join(out, "manifest.json"), manifest)
        FileSystems.delete([rundir.join(out, progress.DIRECTORY)])
        claim.complete()
    return manifest
