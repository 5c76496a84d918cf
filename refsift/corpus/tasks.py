"""Cutting a corpus into tasks: the units of work that workers take and runs resume by.

A task is one input file, a byte range of a large uncompressed line-delimited file (JSONL,
or text with one document per line), a range of row groups of a large Parquet file, or
one Hugging Face dataset. Ranges are cut near `task_size` bytes, so that one 10 GB file is
many workers' work rather than one's. Compressed files (.gz, .bz2, .zst, ...) cannot be
entered in the middle and are always one task each.

A byte-range task owns the lines that *start* inside [start, end): it skips the partial
line it begins in (the task before reads it) and reads through the line that crosses its
end. Row numbers stay those of the whole file: a byte-range task learns the row of its
first line from the index pass (`IndexCorpus`), which counts every task's lines.

Planning is cheap and runs on the launcher: it lists files and, for large Parquet files
only, reads their footers.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from refsift.config import DEFAULT_TASK_SIZE
from refsift.errors import RefsiftError

_SUFFIXES = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".txt": "text",
    ".md": "text",
    ".text": "text",
}
_COMPRESSED = (".gz", ".bz2", ".zst", ".zstd", ".deflate", ".xz", ".lzma")
_UNSUPPORTED = (".lz4", ".snappy", ".br", ".zip", ".7z", ".tar")  # would be read as raw bytes: refused


@dataclass(frozen=True)
class Task:
    """One unit of work.

    Args:
      index: position in the plan (names the task's shards and completion markers).
      input: the file (or dataset path or name) it reads.
      format: "jsonl", "parquet", "text" or "hf".
      start, end: a byte range for line formats, a row-group range for Parquet; end None
        means to the end.
      first_row: the row number of the task's first record in its file; None for a
        byte-range task past the start of its file (the index pass counts it).
      size: bytes of input, for progress estimates.
    """

    index: int
    input: str
    format: str
    start: int = 0
    end: int | None = None
    first_row: int | None = 0
    size: int = 0

    def to_json(self) -> dict:
        return asdict(self)


def detect_format(path: str) -> str | None:
    """Format from a file name, looking through a compression suffix."""
    name = PurePosixPath(path).name
    for suffix in _COMPRESSED:
        name = name.removesuffix(suffix)
    return _SUFFIXES.get(PurePosixPath(name).suffix)


@functools.lru_cache(maxsize=4096)  # called for every record of a file
def source_name(path: str) -> str:
    """Default source label: the file name without format or compression suffixes."""
    name = PurePosixPath(path.rstrip("/")).name
    while PurePosixPath(name).suffix in {*_SUFFIXES, *_COMPRESSED, ".arrow"}:
        name = PurePosixPath(name).stem
    return name


def is_saved_dataset(path: str) -> bool:
    """A local directory written by `datasets` `save_to_disk` (a Dataset or a DatasetDict)."""
    return any(Path(path, name).is_file() for name in ("state.json", "dataset_dict.json"))


def is_compressed(path: str) -> bool:
    return CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED


def match(pattern: str) -> list:
    """Beam FileMetadata of the files a pattern matches, sorted by path; refuses no match."""
    try:
        found = FileSystems.match([pattern])[0].metadata_list
    except Exception as err:  # Beam raises BeamIOError with nested causes
        raise RefsiftError(f"cannot read input {pattern}: {' '.join(str(err).split())[:300]}") from None
    if not found:
        raise RefsiftError(f"input {pattern} matches no file")
    directories = [m.path for m in found if "://" not in m.path and Path(m.path).is_dir()]
    if directories:
        raise RefsiftError(
            f"input {directories[0]} is a directory: give a glob such as {directories[0]}/*.jsonl "
            "(or --format hf for a dataset saved with save_to_disk)"
        )
    return sorted(found, key=lambda m: m.path)


def _check_format(path: str, fmt: str) -> None:
    """Refuses a file whose content is plainly not in the format asked for."""
    if fmt != "parquet" or is_compressed(path):
        return
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            head = handle.read(4)
    except OSError as err:
        raise RefsiftError(f"cannot read input {path}: {err}") from None
    if head != b"PAR1":
        raise RefsiftError(f"{path} is not a Parquet file: give the right --format (or --format auto)")


def _check_dataset(name: str) -> None:
    """A saved dataset directory, or a dataset name that `datasets` can resolve."""
    if "://" not in name and Path(name).exists():
        if Path(name).is_file():
            raise RefsiftError(f"--format hf takes a save_to_disk directory or a hub dataset name, not a file: {name}")
        if not is_saved_dataset(name):
            raise RefsiftError(f"{name} is not a dataset saved with save_to_disk (no state.json or dataset_dict.json)")
        return
    import datasets

    try:
        datasets.load_dataset_builder(name)
    except Exception as err:  # offline, misspelled, private: say so now rather than as a rejected row
        raise RefsiftError(f"cannot find dataset {name}: {' '.join(str(err).split())[:200]}") from None


def _parquet_tasks(path: str, size: int, task_size: int) -> list[tuple[int, int | None, int]]:
    """(first row group, end row group, first row) ranges of about task_size bytes."""
    import pyarrow.parquet as pq

    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            meta = pq.ParquetFile(handle).metadata
    except Exception:  # an unreadable footer: one task, whose reader reports the file
        return [(0, None, 0)]
    ranges, start, first_row, row, weight = [], 0, 0, 0, 0
    for group in range(meta.num_row_groups):
        weight += meta.row_group(group).total_byte_size
        row += meta.row_group(group).num_rows
        if weight >= task_size:
            ranges.append((start, group + 1, first_row))
            start, first_row, weight = group + 1, row, 0
    if start < meta.num_row_groups or not ranges:
        ranges.append((start, None, first_row))
    return ranges


def plan_tasks(
    inputs: list[str], *, format: str = "auto", text_per_line: bool = False, task_size: int = DEFAULT_TASK_SIZE
) -> tuple[list[Task], list[dict]]:
    """The tasks for `inputs`, and what identifies the inputs ({path, size, mtime} per file)
    so that a resumed run can tell whether they changed."""
    if task_size < 1:
        raise RefsiftError("--task-size must be positive")
    tasks: list[Task] = []
    identity: list[dict] = []
    given: dict[str, str] = {}  # file -> the pattern that matched it

    def add(path, fmt, start=0, end=None, first_row=0, size=0):
        tasks.append(Task(len(tasks), path, fmt, start, end, first_row, size))

    for pattern in inputs:
        if format == "hf":
            _check_dataset(pattern)
            identity.append({"path": pattern})
            add(pattern, "hf")
            continue
        for meta in match(pattern):
            path, size = meta.path, meta.size_in_bytes
            # the same file under two spellings (a.jsonl, ./a.jsonl, a link, a glob) is one file
            key = os.path.realpath(path) if "://" not in path else path
            if key in given:
                twice = "twice" if given[key] == pattern else f"by {given[key]} and by {pattern}"
                raise RefsiftError(f"input {path} is given {twice}: each file may be read once")
            given[key] = pattern
            if path.lower().endswith(_UNSUPPORTED):
                raise RefsiftError(
                    f"input {path}: refsift cannot read {PurePosixPath(path).suffix} files; decompress it "
                    "(gzip, bzip2, xz, zstd and deflate are read as they are)"
                )
            identity.append({"path": path, "size": size, "mtime": meta.last_updated_in_seconds})
            fmt = format if format != "auto" else (detect_format(path) or "jsonl")
            _check_format(path, fmt)
            splittable = size > task_size and not is_compressed(path)
            if fmt == "parquet" and splittable:
                for start, end, first_row in _parquet_tasks(path, size, task_size):
                    add(path, fmt, start, end, first_row, size)
            elif splittable and (fmt == "jsonl" or (fmt == "text" and text_per_line)):
                pieces = math.ceil(size / task_size)
                for i in range(pieces):
                    end = None if i == pieces - 1 else (i + 1) * task_size
                    add(path, fmt, i * task_size, end, 0 if i == 0 else None, min(task_size, size - i * task_size))
            else:
                add(path, fmt, size=size)
    if not tasks:
        raise RefsiftError("no input given")
    return tasks, identity
