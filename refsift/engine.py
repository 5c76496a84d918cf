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
import logging
import re

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from refsift import console, progress, rundir
from refsift.catalog import EMPTY_SHARD
from refsift.errors import Interrupted, RefsiftError

PLAN = "_plan.json"
MARKERS = "_chunks"
log = logging.getLogger("refsift")


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Beam options from the arguments refsift passed through; DirectRunner unless told.

    Beam only logs a warning for an option it does not know, so a typo such as
    `--max-lenght` would be lost silently, and a stray path would be ignored: unknown
    options and positional arguments are refused here instead.
    """
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
    """Chunk name -> what is wrong with its shards: missing, or not the bytes its marker
    recorded (size and SHA-256). Markers written before digests were recorded are checked
    for presence only."""
    problems = {}
    for marker in markers:
        digests = marker.get("digests", {})
        for table, name in marker["files"].items():
            path = rundir.join(out, table, name)
            if not FileSystems.exists(path):
                problems[marker_name(marker)] = f"{table}/{name} is missing"
                break
            expected = digests.get(table)
            if expected is None:
                continue
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
    unsigned = sum(1 for m in markers if m["files"] and "digests" not in m)
    checked = {
        "chunks": len(markers),
        "shards": sum(len(m["files"]) for m in markers),
        "unsigned_chunks": unsigned,
        **counts,
    }
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


def run_job(pipeline, out: str, *, what: str = "run") -> None:
    """Runs a chunk job. Its workers' own output goes to a log file (unless --verbose);
    Ctrl-C or a failure becomes one line naming how many chunks are committed and that
    `--resume` finishes the run."""
    with console.worker_output() as log_file:
        try:
            pipeline.run().wait_until_finish()
        except (KeyboardInterrupt, Exception) as err:
            done = len(read_markers(out))
            if interrupted(err):
                raise Interrupted(
                    f"interrupted: {done} chunks of the {what} are committed; the same command with --resume "
                    "finishes it"
                ) from None
            where = f" (the workers' output is in {log_file})" if log_file else ""
            raise RefsiftError(
                f"the {what} stopped: {explain(err)}. {done} chunks are committed; once that is fixed, the same "
                f"command with --resume finishes it{where}"
            ) from None
