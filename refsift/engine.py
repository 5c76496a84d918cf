"""The chunk engine's launcher side, shared by every command that commits chunks (`score`,
`classify`, `dedup`): Beam options, the plan, completion markers and the digests of the
shards they name, resuming, checking a finished run, and running the job so that a
failure or Ctrl-C ends in one line that says how to continue.

A run directory holds `_plan.json` (the tasks) and, for every committed chunk, a marker
`_chunks/<task>-<chunk>.json` written after the chunk's shards (see
`refsift.transforms.commit_chunks`). A marker names each shard with its size and SHA-256,
so a copied or edited run is caught: `check_shards` finds every shard that is missing or
no longer what its chunk wrote, `--resume` scores those chunks again, and `refsift verify`
reports them.
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import json
import logging
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.pvalue import AsDict, AsSingleton

import refsift
from refsift import catalog, console, progress, rundir
from refsift.catalog import EMPTY_SHARD
from refsift.corpus.tasks import Task, is_saved_dataset
from refsift.errors import Interrupted, RefsiftError
from refsift.terminal import plural
from refsift.transforms.commit_chunks import MARKERS
from refsift.transforms.index_corpus import IndexCorpus
from refsift.transforms.read_corpus import ReadCorpus
from refsift.transforms.read_parquet import ReadParquet

PLAN = "_plan.json"
log = logging.getLogger("refsift")


RUNNERS = {
    "direct": "DirectRunner",
    "dask": "apache_beam.runners.dask.dask_runner.DaskRunner",
    "portable": "PortableRunner",
    "dataflow": "DataflowRunner",
}


def _short_forms(beam_args: list[str]) -> list[str]:
    """`--runner dask` (direct, portable, dataflow) and `--dask-address A` in Beam's terms."""
    args, out = list(beam_args), []
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if name in ("--runner", "--dask-address") and not eq and args:
            value, eq = args.pop(0), "="
        if name == "--runner" and eq:
            out.append(f"--runner={RUNNERS.get(value.lower(), value)}")
        elif name == "--dask-address" and eq:
            out.append(f"--dask_client_address={value}")
        else:
            out.append(arg)
    return out


def _check_runner(name: str) -> None:
    """Refuses, on the launcher, a --runner that is not a Beam runner: Beam would fail deep
    inside the job, or import and call whatever a dotted name names."""
    from apache_beam.runners.runner import PipelineRunner

    known = {path.rsplit(".", 1)[-1].lower() for path in StandardOptions.ALL_KNOWN_RUNNERS}
    if name.lower() in known or f"{name.lower()}runner" in known:
        return
    module, _, attribute = name.rpartition(".")
    try:
        runner = getattr(importlib.import_module(module), attribute) if module else None
    except (ImportError, AttributeError, ValueError, TypeError):
        runner = None
    if not (isinstance(runner, type) and issubclass(runner, PipelineRunner)):
        raise RefsiftError(
            f"--runner {name}: not a Beam runner; use direct, dask, portable or dataflow (or the full name of a "
            "PipelineRunner class)"
        )


def _check_dask_address(address: str) -> None:
    """Refuses, on the launcher, a Dask scheduler that cannot be reached: the job would fail
    only after its plan is written, with advice (--resume) that cannot help."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise RefsiftError(f"--dask-address {address}: give the scheduler as HOST:PORT (tcp://HOST:PORT)")
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as err:
        raise RefsiftError(f"--dask-address {address}: no scheduler answers there ({err.strerror or err})") from None


def _register_runner_options(beam_args: list[str]) -> None:
    """A runner's own options are known to Beam once its module is imported (Dask's)."""
    runner = next((a.partition("=")[2] for a in beam_args if a.startswith("--runner=")), "")
    if "dask" in runner.lower():
        try:
            import apache_beam.runners.dask.dask_runner  # noqa: F401 (registers DaskOptions)
            import distributed  # noqa: F401
        except ImportError:
            raise RefsiftError("the Dask runner needs dask: pip install 'dask[distributed]'") from None


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Beam options from the arguments refsift passed through; DirectRunner unless told.
    Short forms: `--runner direct|dask|portable|dataflow`, `--dask-address ADDRESS`.

    Beam only logs a warning for an option it does not know, so a typo such as
    `--max-lenght` would be lost silently, and a stray path would be ignored: unknown
    options and positional arguments are refused here instead.
    """
    beam_args = _short_forms(beam_args)
    _register_runner_options(beam_args)
    for arg in beam_args:
        if arg.startswith("--runner="):
            _check_runner(arg.partition("=")[2])
        if arg.startswith("--dask_client_address="):
            _check_dask_address(arg.partition("=")[2])
    parsers = []
    PipelineOptions(beam_args).get_all_options(add_extra_args_fn=parsers.append)
    _, unknown = parsers[0].parse_known_args(beam_args)
    options = [arg for arg in unknown if arg.startswith("-")]
    if options:
        raise RefsiftError(f"unrecognized arguments: {' '.join(options)}")
    if unknown:
        raise RefsiftError(
            f"unexpected argument {unknown[0]!r}: give inputs with --input, Beam options as --name=value"
        )
    if not any(arg.startswith("--runner") for arg in beam_args):
        beam_args = ["--runner=DirectRunner", *beam_args]
    return PipelineOptions(beam_args)


def runner_name(options: PipelineOptions) -> str:
    return str(options.view_as(StandardOptions).runner or "DirectRunner")


def is_dataflow(options: PipelineOptions) -> bool:
    return "dataflow" in runner_name(options).lower()


def check_device(device: str, options: PipelineOptions) -> None:
    """The device a job's workers will use, refused on the launcher before any work. On
    Dataflow the workers are other machines: a CUDA device needs GPU workers asked for (the
    launcher itself may have no GPU); elsewhere the workers are this machine's processes."""
    from refsift import models

    if not is_dataflow(options):
        models.check_device(device)
        return
    if device.startswith("cuda"):
        from apache_beam.options.pipeline_options import GoogleCloudOptions

        service = options.view_as(GoogleCloudOptions).dataflow_service_options or []
        if not any("worker_accelerator" in option for option in service):
            raise RefsiftError(
                f"--device {device} on Dataflow needs GPU workers: --dataflow_service_options "
                "'worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver' and a worker image with CUDA torch "
                "(--sdk_container_image; see docker/Dockerfile)"
            )


def dry_run(options: PipelineOptions) -> bool:
    """Dataflow's `--dry_run`: the job is built and validated, not submitted."""
    from apache_beam.options.pipeline_options import TestOptions

    return is_dataflow(options) and bool(options.view_as(TestOptions).dry_run)


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


def files(out: str, table: str) -> set[str]:
    found = FileSystems.match([rundir.join(out, table, "*")])[0].metadata_list
    return {m.path.rsplit("/", 1)[-1] for m in found}


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with FileSystems.open(path, compression_type="uncompressed") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def marker_name(marker: dict) -> str:
    return f"{marker['task']:06d}-{marker['chunk']:06d}"


def check_shards(out: str, markers: list[dict]) -> dict[str, str]:
    """Chunk name -> what is wrong with its shards: missing, reached through a symbolic
    link, without a digest in its marker, or not the bytes its marker recorded (size and
    SHA-256). A shard without a digest is damaged: nothing says what it should hold."""
    problems = {}
    for marker in markers:
        digests = marker.get("digests", {})
        for table, name in marker["files"].items():
            path = rundir.join(out, table, name)
            if not FileSystems.exists(path):
                problems[marker_name(marker)] = f"{table}/{name} is missing"
                break
            if rundir.is_local(out) and Path(rundir.local_path(path)).is_symlink():
                problems[marker_name(marker)] = f"{table}/{name} is a symbolic link, not a shard its chunk wrote"
                break
            expected = digests.get(table)
            if not isinstance(expected, dict):
                problems[marker_name(marker)] = f"{table}/{name} has no digest in its chunk's marker"
                break
            size = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
            if size != expected["bytes"] or sha256(path) != expected["sha256"]:
                problems[marker_name(marker)] = f"{table}/{name} is not what its chunk wrote (size or SHA-256 differ)"
                break
    return problems


def drop_chunks(out: str, markers: list[dict], names: set[str]) -> list[dict]:
    """Removes the markers (then the shards) of the chunks `names`, so that a resumed run
    scores them again; returns the markers that stay."""
    dropped = [m for m in markers if marker_name(m) in names]
    FileSystems.delete([rundir.join(out, MARKERS, f"{marker_name(m)}.json") for m in dropped])
    shards = [rundir.join(out, t, n) for m in dropped for t, n in m["files"].items()]
    present = [p for p in shards if FileSystems.exists(p)]
    if present:
        FileSystems.delete(present)
    return [m for m in markers if marker_name(m) not in names]


def tidy(out: str, markers: list[dict], tables: tuple[str, ...]) -> None:
    """Before resuming: removes what a killed attempt left half done (shards of chunks that
    have no marker, temporary files) and its progress files."""
    expected = {table: {m["files"][table] for m in markers if table in m["files"]} for table in tables}
    stale = []
    for table in tables:
        stale += [rundir.join(out, table, name) for name in files(out, table) - expected[table]]
    stale += [m.path for m in FileSystems.match([rundir.join(out, progress.DIRECTORY, "*")])[0].metadata_list]
    stale += [m.path for m in FileSystems.match([rundir.join(out, MARKERS, "*.tmp")])[0].metadata_list]
    if stale:
        FileSystems.delete(stale)


def resume_markers(out: str, tables: tuple[str, ...]) -> list[dict]:
    """The markers a resumed run can build on: every chunk whose shards are missing or
    changed is dropped (named in a warning) and will be scored again; leftovers tidied."""
    markers = read_markers(out)
    problems = check_shards(out, markers)
    for name, problem in sorted(problems.items()):
        log.warning(f"chunk {name}: {problem}; it is scored again")
    markers = drop_chunks(out, markers, set(problems))
    tidy(out, markers, tables)
    return markers


def verify(out: str, tasks: list, markers: list[dict], tables: tuple[str, ...]) -> dict:
    """The run's counts, checked: every task complete, every shard present and as its
    chunk wrote it, no stray shard, and read = scored + rejected against the index pass."""
    done = committed(markers)
    unfinished = [t.index for t in tasks if done.get(t.index) != {"all"}]
    if unfinished:
        raise RefsiftError(f"{len(unfinished)} of {len(tasks)} tasks did not finish; run again with --resume")
    problems = check_shards(out, markers)
    if problems:
        name, problem = sorted(problems.items())[0]
        more = f" (and {len(problems) - 1} more chunks)" if len(problems) > 1 else ""
        raise RefsiftError(f"{out}: chunk {name}: {problem}{more}; --resume scores such chunks again")
    for table in tables:
        expected = {m["files"][table] for m in markers if table in m["files"]} | {EMPTY_SHARD}
        stray = sorted(files(out, table) - expected)
        if stray:
            raise RefsiftError(f"{out}/{table}/{stray[0]} was not written by any committed chunk of this run")
    counts = totals(markers)
    indexed = (rundir.read_json(rundir.join(out, progress.DIRECTORY, progress.TOTAL)) or {}).get("records")
    if counts["read"] != counts["scored"] + counts["rejected"] or indexed != counts["read"]:
        raise RefsiftError(
            f"conservation failed: the index pass counted {indexed} records, the scoring pass read {counts['read']} "
            f"= scored {counts['scored']} + rejected {counts['rejected']}"
        )
    return counts


def audit(out: str, tables: tuple[str, ...]) -> tuple[list[str], dict]:
    """Everything wrong with a finished run directory, as lines (none when it is sound),
    and what was checked: every planned task committed, every shard present and as its
    chunk wrote it (size and SHA-256), no shard that no chunk wrote, the manifest's counts
    equal to the chunks'."""
    plan = rundir.read_json(rundir.join(out, PLAN)) or {"tasks": []}
    markers = read_markers(out)
    problems = []
    done = committed(markers)
    unfinished = [t["index"] for t in plan["tasks"] if done.get(t["index"]) != {"all"}]
    if unfinished:
        problems.append(
            f"{len(unfinished)} of {len(plan['tasks'])} tasks are not complete (first: task {unfinished[0]})"
        )
    problems += [f"chunk {name}: {why}" for name, why in sorted(check_shards(out, markers).items())]
    for table in tables:
        expected = {m["files"][table] for m in markers if table in m["files"]} | {EMPTY_SHARD}
        problems += [
            f"{table}/{name} was not written by any chunk of this run" for name in sorted(files(out, table) - expected)
        ]
    counts = totals(markers)
    manifest = rundir.read_json(rundir.join(out, "manifest.json")) or {}
    recorded = manifest.get("counts", {})
    for key in ("read", "scored", "rejected"):
        if recorded.get(key) != counts[key]:
            problems.append(f"the manifest counts {key} {recorded.get(key)}, its chunks {counts[key]}")
    checked = {"chunks": len(markers), "shards": sum(len(m["files"]) for m in markers), **counts}
    return problems, checked


def totals(markers: list[dict]) -> dict:
    reasons: dict[str, int] = {}
    for m in markers:
        for reason, n in m["rejected"].items():
            reasons[reason] = reasons.get(reason, 0) + n
    return {
        "read": sum(m["read"] for m in markers),
        "scored": sum(m["scored"] for m in markers),
        "rejected": sum(reasons.values()),
        "rejected_by_reason": dict(sorted(reasons.items())),
        "windows": sum(m["windows"] for m in markers),
        "tokens_scored": sum(m["tokens_scored"] for m in markers),
        "chunks": len(markers),
    }


_RAISED = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt)): (.+?)(?: \[while running .*)?$", re.M)


def _chain(err: BaseException | None) -> list[BaseException]:
    chain, seen = [], set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        chain.append(err)
        err = err.__cause__ or err.__context__
    return chain


def interrupted(err: BaseException) -> bool:
    """Whether a job ended because of Ctrl-C (Beam re-raises it wrapped, or as text)."""
    chain = _chain(err)
    return any(isinstance(e, KeyboardInterrupt) for e in chain) or bool(
        re.search(r"^KeyboardInterrupt", "\n".join(str(e) for e in chain), re.M)
    )


def explain(err: BaseException) -> str:
    """What stopped a job, in one line: a refsift error or a full disk as they are, else the
    innermost exception's type and first line. Beam wraps a worker's exception (as text,
    with its traceback, when the worker is another process)."""
    chain = _chain(err)
    for e in chain:
        if isinstance(e, RefsiftError):
            return str(e).split(" [while running")[0]
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return "the disk is full (no space left on device)"
    text = "\n".join(str(e) for e in chain)
    if "No space left on device" in text:
        return "the disk is full (no space left on device)"
    raised = _RAISED.findall(text)
    for kind, message in raised:
        if kind.endswith("RefsiftError"):
            return message
    if raised:
        kind, message = raised[-1]
        return f"{kind.rsplit('.', 1)[-1]}: {message[:300]}"
    last = chain[-1]
    first = (str(last).strip().splitlines() or [""])[0][:300]
    return f"{type(last).__name__}: {first}" if first else type(last).__name__


class _Leaves(beam.pipeline.PipelineVisitor):
    """The PCollections a pipeline makes and no step reads: its sinks' outputs."""

    def __init__(self):
        self.made, self.read = [], set()

    def visit_transform(self, node):
        self.made += [o for o in node.outputs.values() if isinstance(o, beam.pvalue.PCollection)]
        self.read |= {id(i) for i in node.inputs} | {id(s.pvalue) for s in node.side_inputs}


def join_sinks(pipeline: beam.Pipeline) -> None:
    """Makes every sink an input of one final step. Beam's DaskRunner computes only the
    graph of the last step it visits, so a pipeline with several sinks (scoring's index
    total, selection's data and statistics) would lose all but one of them."""
    leaves = _Leaves()
    pipeline.visit(leaves)
    sinks = [p for p in leaves.made if id(p) not in leaves.read]
    if len(sinks) > 1:
        _ = tuple(sinks) | "JoinSinks" >> beam.Flatten() | "Done" >> beam.Filter(lambda _: False)


def finish(result) -> None:
    """Waits for a job; closes the Dask client Beam's DaskRunner opened and leaves open (it
    would keep reconnecting to a cluster that has gone)."""
    try:
        result.wait_until_finish()
    finally:
        client = getattr(result, "client", None)
        if client is not None:
            client.close()


def run_job(pipeline, out: str, *, what: str = "run", resumable: bool = True) -> None:
    """Runs a job. Its workers' own output goes to a log file (unless --verbose); Ctrl-C or
    a failure becomes one line, which for a chunk job (`resumable`) names how many chunks
    are committed and that `--resume` finishes the run."""
    if "dask" in str(pipeline.options.view_as(StandardOptions).runner).lower():
        join_sinks(pipeline)
    with console.worker_output() as log_file:
        try:
            finish(pipeline.run())
        except (KeyboardInterrupt, Exception) as err:
            where = f" (the workers' output is in {log_file})" if log_file else ""
            if not resumable:
                if interrupted(err):
                    raise Interrupted(f"interrupted: the {what} is incomplete") from None
                raise RefsiftError(f"the {what} stopped: {explain(err)}{where}") from None
            done = len(read_markers(out))
            if interrupted(err):
                raise Interrupted(
                    f"interrupted: {plural(done, 'chunk')} of the {what} committed; the same command with --resume "
                    "finishes it"
                ) from None
            raise RefsiftError(
                f"the {what} stopped: {explain(err)}. {plural(done, 'chunk')} committed; once that is fixed, the same "
                f"command with --resume finishes it{where}"
            ) from None


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
      kind: what the directory is (`refsift.rundir.KINDS`).
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
        if not files(out, table):
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
    started = time.time()
    manifest = {
        "refsift_version": refsift.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": sys.argv,
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
            kept = read_markers(out)
            markers = resume_markers(out, job.tables)
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
        job.build(pipeline, out, tasks, committed(markers))
        done_before = sum(m["read"] for m in markers)
        with progress.Line(out, job.progress_roles, done_before=done_before, activity=job.activity):
            run_job(pipeline, out)
        markers = read_markers(out)
        counts = verify(out, tasks, markers, job.tables)
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
