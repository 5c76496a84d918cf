"""A chunk job's ledger: the plan and, for every committed chunk, a marker.

A run directory holds `_plan.json` (the tasks) and, for every committed chunk, a marker
`_chunks/<task>-<chunk>.json` written after the chunk's shards (see
`refsift.transforms.commit_chunks`). A marker names each shard with its size and SHA-256,
and the chunk's counts, so a copied or edited run is caught: `problems` finds every task
not committed, every shard that is missing or no longer what its chunk wrote, and every
shard no chunk wrote. `--resume` scores the damaged chunks again (`resume_markers`), the
end of a job refuses them (`verify`), `refsift verify` lists them (`audit`).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from apache_beam.io.filesystems import FileSystems

from refsift.catalog import EMPTY_SHARD
from refsift.errors import RefsiftError
from refsift.jobs import progress, rundir
from refsift.transforms.commit_chunks import COUNTS, MARKERS

log = logging.getLogger("refsift")

PLAN = "_plan.json"


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


def drop_temporary(out: str, tables: tuple[str, ...]) -> None:
    """Once every worker is done: removes the temporary files of shard writes that never
    finished (a worker killed mid-write, whose chunk the runner then ran again elsewhere). A
    shard is written under a temporary name and renamed, so such a file is never a shard."""
    stale = [
        m.path for table in tables for m in FileSystems.match([rundir.join(out, table, "*.tmp-*")])[0].metadata_list
    ]
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


def problems(out: str, tasks: list[int], markers: list[dict], tables: tuple[str, ...]) -> list[str]:
    """Everything wrong with a run's chunks, as lines (none when it is sound): every planned
    task (by index) committed, every shard present and as its chunk wrote it (size and
    SHA-256), no shard that no chunk wrote."""
    found = []
    done = committed(markers)
    unfinished = [t for t in tasks if done.get(t) != {"all"}]
    if unfinished:
        found.append(f"{len(unfinished)} of {len(tasks)} tasks are not complete (first: task {unfinished[0]})")
    found += [f"chunk {name}: {why}" for name, why in sorted(check_shards(out, markers).items())]
    for table in tables:
        expected = {m["files"][table] for m in markers if table in m["files"]} | {EMPTY_SHARD}
        found += [
            f"{table}/{name} was not written by any chunk of this run" for name in sorted(files(out, table) - expected)
        ]
    return found


def verify(out: str, tasks: list, markers: list[dict], tables: tuple[str, ...]) -> dict:
    """The run's counts, checked at the end of a job: `problems` finds nothing, and
    read = scored + rejected against the index pass."""
    found = problems(out, [t.index for t in tasks], markers, tables)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise RefsiftError(f"{out}: {found[0]}{more}; the same command with --resume scores such chunks again")
    counts = totals(markers)
    indexed = (rundir.read_json(rundir.join(out, progress.DIRECTORY, progress.TOTAL)) or {}).get("records")
    if counts["read"] != counts["scored"] + counts["rejected"] or indexed != counts["read"]:
        raise RefsiftError(
            f"conservation failed: the index pass counted {indexed} records, the job read {counts['read']} "
            f"= scored {counts['scored']} + rejected {counts['rejected']}"
        )
    return counts


def audit(out: str, tables: tuple[str, ...]) -> tuple[list[str], dict]:
    """Everything wrong with a finished run directory, as lines, and what was checked:
    `problems`, and the manifest's counts equal to the chunks'."""
    plan = rundir.read_json(rundir.join(out, PLAN)) or {"tasks": []}
    markers = read_markers(out)
    found = problems(out, [t["index"] for t in plan["tasks"]], markers, tables)
    counts = totals(markers)
    recorded = (rundir.read_json(rundir.join(out, "manifest.json")) or {}).get("counts", {})
    for key in ("read", "scored", "rejected"):
        if recorded.get(key) != counts[key]:
            found.append(f"the manifest counts {key} {recorded.get(key)}, its chunks {counts[key]}")
    checked = {"chunks": len(markers), "shards": sum(len(m["files"]) for m in markers), **counts}
    return found, checked


def totals(markers: list[dict]) -> dict:
    """The chunks' counts summed: every count a marker holds (`CommitChunks` writes read,
    scored, windows, tokens_scored and the rejections by reason), and the chunks."""
    counts: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for m in markers:
        for key, value in m.items():
            if key in COUNTS:
                counts[key] = counts.get(key, 0) + value
        for reason, n in m["rejected"].items():
            reasons[reason] = reasons.get(reason, 0) + n
    return {
        "read": counts.get("read", 0),
        "scored": counts.get("scored", 0),
        "rejected": sum(reasons.values()),
        "rejected_by_reason": dict(sorted(reasons.items())),
        **{key: counts.get(key, 0) for key in COUNTS if key not in ("read", "scored")},
        "chunks": len(markers),
    }
