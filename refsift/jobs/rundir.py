"""Output directories: which ones refsift may write, replace or read.

Every command that writes a directory (a scoring run, a selection, a novelty report, an
attribution) claims it first:

- `RUN/.refsift` marks a directory as made by refsift and says what it is and whether the
  command that made it finished: {"kind": "run", "status": "running" | "complete"}. It is
  written when the command starts and rewritten as the very last step, so a run killed at
  any moment reads as incomplete, never as a finished run with missing parts.
- `--overwrite` only ever empties a directory that holds that marker, and never one that
  holds an input of the command or the run it reads.
- A second command writing into the same local directory at the same time is refused: the
  first holds an exclusive lock on `RUN/.lock` until it exits (the operating system drops
  it if the process dies). Remote directories (gs://) have no such lock.

Commands that read a directory call `require`, which refuses anything that is not a
complete directory of the expected kind with one line saying what to do.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from refsift.errors import RefsiftError

MARKER = ".refsift"
LOCK = ".lock"
KINDS = {
    "run": "scoring run",
    "selection": "selection",
    "checkpoint": "fine-tuned checkpoint",
    "novelty": "novelty report",
    "attribution": "attribution",
    "classifier": "classifier",
    "dedup": "dedup run",
    "ablation": "ablation",
    "mixture": "mixture search",
}


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def local_path(path: str) -> str:
    return path.removeprefix("file://") if is_local(path) else path


def join(directory: str, *parts: str) -> str:
    return "/".join([directory.rstrip("/"), *parts])


def filesystems():
    """Beam's FileSystems, imported on first use: `import refsift` stays light."""
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def read_json(path: str) -> dict | None:
    """A JSON file from any Beam filesystem, or None when it does not exist."""
    FileSystems = filesystems()
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as handle:
        return json.loads(handle.read())


def write_json(path: str, content: dict) -> None:
    """Writes JSON atomically: a reader sees the old content or the new, never a part."""
    data = json.dumps(content, indent=2, ensure_ascii=False, default=str).encode()
    if is_local(path):
        tmp = Path(local_path(path) + ".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, local_path(path))
    else:  # an object store makes an object visible whole, when its upload completes
        with filesystems().create(path) as handle:
            handle.write(data)


def marker(directory: str) -> dict | None:
    try:
        return read_json(join(directory, MARKER))
    except (ValueError, OSError):
        return None


@dataclass
class Claim:
    """A directory this process may write; `resumed` when it continues an incomplete run."""

    path: str
    kind: str
    resumed: bool = False

    def complete(self, **extra) -> None:
        write_json(join(self.path, MARKER), {"kind": self.kind, "status": "complete", **extra})

    def reopen(self) -> None:
        """A complete directory is being changed again (a resumed run redoing a chunk)."""
        write_json(join(self.path, MARKER), {"kind": self.kind, "status": "running"})


def _inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def _check_protected(out: Path, protect: Iterable[str]) -> None:
    for item in protect:
        if not item or not is_local(item):
            continue
        resolved = Path(local_path(item)).expanduser().resolve()
        if _inside(resolved, out) or _inside(out, resolved):
            raise RefsiftError(f"refusing to write {out}: it holds {item}, which this command reads")


def _clear(directory: Path) -> None:
    for entry in directory.iterdir():
        if entry.name == LOCK:
            continue  # held by this process; deleting it would let another take a new one
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


_held: set[Path] = set()  # the directories this process holds claims on


@contextmanager
def claim(
    out: str, *, kind: str, overwrite: bool = False, resume: bool = False, protect: Iterable[str] = ()
) -> Iterator[Claim]:
    """Takes `out` for writing a directory of `kind`; see the module docstring.

    Args:
      out: the directory (local or any Beam filesystem).
      kind: one of KINDS.
      overwrite: empty a directory refsift made before writing.
      resume: keep an incomplete directory of the same kind (the caller continues it).
      protect: paths this command reads (inputs, the run it reads): `out` may neither hold
        them nor lie inside them.
    """
    if not is_local(out):
        yield _claim_remote(out, kind, overwrite, resume)
        return
    path = Path(local_path(out)).expanduser()
    if path.is_symlink():
        raise RefsiftError(f"{out} is a symbolic link: give the directory it points to")
    if path.exists() and not path.is_dir():
        raise RefsiftError(f"{out} is a file, not a directory")
    resolved = path.resolve()
    if "," in str(resolved):  # refused now, not when the catalog is built after the whole job
        raise RefsiftError(f"{out}: DuckDB cannot resolve files in a directory whose path holds a comma")
    _check_protected(resolved, protect)
    home = owner(resolved.parent)
    if home is not None and home not in _held:  # a directory this very command holds may nest its parts
        raise RefsiftError(
            f"{out} lies inside {home}, a {KINDS.get((marker(str(home)) or {}).get('kind'), 'directory')} refsift "
            "made: write beside it, not into it"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        lock = open(path / LOCK, "a")  # noqa: SIM115 (held until the command ends)
    except OSError as err:
        raise RefsiftError(f"cannot write {out}: {err.strerror}") from None
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RefsiftError(f"{out} is being written by another refsift command; wait for it to finish") from None
        found = marker(str(path))
        others = [e for e in path.iterdir() if e.name != LOCK]
        resumed = False
        if resume and found and found.get("kind") == kind:
            resumed = True  # complete or not: the caller finishes it, or says there is nothing left to do
        elif resume and others:
            raise RefsiftError(f"{out} holds no {KINDS[kind]} to resume")
        elif others:
            if not found:
                raise RefsiftError(
                    f"{out} is not empty and was not made by refsift: refusing to write into it or delete it"
                )
            what = KINDS.get(found.get("kind"), "directory")
            if not overwrite:
                state = "an incomplete " + what if found.get("status") != "complete" else "a " + what
                resumable = kind in ("run", "dedup")
                hint = " (add --resume to finish it)" if state.startswith("an incomplete") and resumable else ""
                raise RefsiftError(f"{out} holds {state}{hint}; pass --overwrite to replace it")
            if found.get("kind") != kind:
                raise RefsiftError(
                    f"{out} holds a {what}, not a {KINDS[kind]}: --overwrite replaces only a directory of the same kind"
                )
            _clear(path)
        if not resumed:
            write_json(str(path / MARKER), {"kind": kind, "status": "running"})
        _held.add(resolved)
        yield Claim(str(path), kind, resumed)
    finally:
        _held.discard(resolved)
        lock.close()


def _claim_remote(out: str, kind: str, overwrite: bool, resume: bool) -> Claim:
    FileSystems = filesystems()
    found = marker(out)
    existing = [m.path for m in FileSystems.match([join(out, "**")])[0].metadata_list]
    if found and resume and found.get("kind") == kind:
        return Claim(out, kind, resumed=True)
    if existing:
        if not found:
            raise RefsiftError(f"{out} is not empty and was not made by refsift: refusing to write into it")
        if not overwrite:
            raise RefsiftError(f"{out} is not empty; pass --overwrite to replace it")
        FileSystems.delete(existing)
    write_json(join(out, MARKER), {"kind": kind, "status": "running"})
    return Claim(out, kind)


def owner(path: Path) -> Path | None:
    """The nearest directory at or above `path` that refsift made (holds a marker), if any."""
    for directory in (path, *path.parents):
        if (directory / MARKER).is_file():
            return directory
    return None


MAX_PAGE_BYTES = 64 << 20  # refsift's pages are bounded far below this
_PAGE_SEAL = re.compile(rb"<!-- refsift page sha256:([0-9a-f]{64}) -->\n\Z")


def seal_page(html: str) -> str:
    """A page with its own digest appended, so that `claim_file` knows a page refsift wrote
    from a file that merely contains refsift's words (an input quoting a page, say)."""
    digest = hashlib.sha256(html.encode("utf-8")).hexdigest()
    return f"{html}<!-- refsift page sha256:{digest} -->\n"


def sealed_page(data: bytes) -> bool:
    """Whether `data` is a page `seal_page` made and nobody changed since."""
    found = _PAGE_SEAL.search(data)
    return bool(found) and hashlib.sha256(data[: found.start()]).hexdigest() == found.group(1).decode()


def claim_file(out: str, *, default_name: str = "report.html") -> Path:
    """A path refsift may write a page to: a new file, or a page refsift wrote before (its
    generator tag says so), never through a symbolic link, and never inside a directory
    refsift made (a run, a selection, ...) except as that directory's own `default_name`.
    So a page can overwrite neither a shard, a catalog, an input nor a user's file."""
    path = Path(local_path(out)).expanduser()
    if path.is_symlink():
        raise RefsiftError(f"{out} is a symbolic link: refusing to write through it")
    if path.exists():
        if not path.is_file():
            raise RefsiftError(f"{out} is not a file")
        if path.stat().st_size > MAX_PAGE_BYTES or not sealed_page(path.read_bytes()):
            raise RefsiftError(f"{out} exists and is not a page refsift wrote: refusing to overwrite it")
    resolved = path.resolve()
    home = owner(resolved.parent)
    if home is not None and resolved != home / default_name:
        raise RefsiftError(
            f"{out} lies inside {home}, which refsift made: write the page outside it (or as {home / default_name})"
        )
    return resolved


def require(directory: str, kind: str | tuple[str, ...]) -> dict:
    """The marker of a complete directory of `kind`; refuses anything else with one line."""
    kinds = (kind,) if isinstance(kind, str) else kind
    what = " or ".join(KINDS[k] for k in kinds)
    if is_local(directory) and not Path(local_path(directory)).is_dir():
        raise RefsiftError(f"{directory} is not a directory: give a refsift {what}")
    found = marker(directory)
    if found is None:
        raise RefsiftError(f"{directory} is not a refsift {what} (it has no {MARKER} marker)")
    if found.get("kind") not in kinds:
        raise RefsiftError(f"{directory} is a {KINDS.get(found.get('kind'), 'directory')}, not a {what}")
    if found.get("status") != "complete":
        command = {"run": "score (or classify)", "dedup": "dedup"}.get(found.get("kind"))
        hint = f": finish it with `refsift {command} ... --out DIR --resume`" if command else ""
        raise RefsiftError(f"{directory} is an incomplete {KINDS[found['kind']]} (it was interrupted){hint}")
    return found


def header() -> dict:
    """The entries every record refsift writes (a manifest, a card, a report) starts with."""
    import sys
    from datetime import UTC, datetime

    import refsift

    return {
        "refsift_version": refsift.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": sys.argv,
    }
