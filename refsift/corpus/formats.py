"""Reading a task's raw records, format by format, without ever raising on bad data.

`payloads(task, columns)` yields (row, payload): `row` counts from the task's start (every
physical line for line formats, blank ones too), and `payload` is the raw record: the
line's bytes (JSONL, text per line), the whole file's bytes (text), a dict of the wanted
columns (Parquet, Hugging Face datasets), or a `ReadError` when the input cannot be read
past that point (a truncated gzip stream, a corrupt Parquet page, a file that vanished).
After a `ReadError` nothing more comes from the task, so a damaged file is reported at the
place it breaks instead of being silently shortened.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from refsift.corpus.tasks import Task

UTF8_BOM = b"\xef\xbb\xbf"
DEFAULT_CHUNK_SIZE = 2**20  # bytes of input per chunk: the unit of memory and of resumption


@dataclass(frozen=True)
class ReadError:
    """The input could not be read from this row on; `lost` rows are known to be lost
    (Parquet knows its row counts), None when unknown (a truncated compressed stream)."""

    detail: str
    lost: int | None = None


def _describe(err: BaseException) -> str:
    text = " ".join(str(err).split())[:300]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def payloads(task: Task, columns: list[str], *, per_line: bool = False, split: str = "train") -> Iterator[tuple]:
    """(row, payload) for every record of `task`; see the module docstring."""
    if task.format == "parquet":
        yield from _parquet_rows(task, columns)
    elif task.format == "hf":
        yield from _dataset_rows(task, columns, split)
    elif task.format == "text" and not per_line:
        try:
            with FileSystems.open(task.input) as handle:
                data = handle.read()
        except Exception as err:
            yield 0, ReadError(_describe(err))
            return
        yield 0, data.removeprefix(UTF8_BOM)
    else:
        yield from _lines(task)


def _open_lines(task: Task):
    """A binary stream of the task's file, decompressed. gzip and bz2 go through Python's
    own readers, which raise at a missing end of stream; Beam's would end the file early
    without a word, and the rest of a truncated file would be lost silently."""
    if task.start or task.end is not None:
        return FileSystems.open(task.input, compression_type=CompressionTypes.UNCOMPRESSED)
    kind = CompressionTypes.detect_compression_type(task.input)
    if kind in (CompressionTypes.GZIP, CompressionTypes.BZIP2):
        import bz2
        import gzip

        raw = FileSystems.open(task.input, compression_type=CompressionTypes.UNCOMPRESSED)
        return gzip.GzipFile(fileobj=raw) if kind == CompressionTypes.GZIP else bz2.BZ2File(raw)
    return FileSystems.open(task.input)  # other compressions: Beam's reader, by the suffix


def _lines(task: Task) -> Iterator[tuple[int, bytes | ReadError]]:
    """Physical lines (newline stripped) of the task's byte range."""
    row = 0
    try:
        with _open_lines(task) as handle:
            position = task.start
            if task.start:
                handle.seek(task.start - 1)
                position += len(handle.readline()) - 1  # the rest of a line the task before owns
            while task.end is None or position < task.end:
                line = handle.readline()
                if not line:
                    break
                position += len(line)
                if row == 0 and task.start == 0:
                    line = line.removeprefix(UTF8_BOM)
                yield row, line.rstrip(b"\r\n")
                row += 1
    except Exception as err:  # zlib.error, EOFError, OSError, ...: the rest of the file is unreadable
        yield row, ReadError(_describe(err))


def _parquet_rows(task: Task, columns: list[str]) -> Iterator[tuple[int, dict | ReadError]]:
    import pyarrow.parquet as pq

    row = 0
    try:
        handle = FileSystems.open(task.input, compression_type=CompressionTypes.UNCOMPRESSED)
        parquet = pq.ParquetFile(handle)
    except Exception as err:
        yield 0, ReadError(_describe(err))
        return
    with handle:
        meta = parquet.metadata
        groups = list(range(task.start, meta.num_row_groups if task.end is None else task.end))
        total = sum(meta.row_group(g).num_rows for g in groups)
        wanted = [c for c in columns if c in parquet.schema_arrow.names]
        try:
            for batch in parquet.iter_batches(batch_size=1024, row_groups=groups, columns=wanted):
                for record in batch.to_pylist():
                    yield row, record
                    row += 1
        except Exception as err:
            yield row, ReadError(_describe(err), lost=total - row)


def _dataset_rows(task: Task, columns: list[str], split: str) -> Iterator[tuple[int, dict | ReadError]]:
    row = 0
    try:
        import datasets

        try:
            dataset = datasets.load_from_disk(task.input)
        except FileNotFoundError:
            dataset = datasets.load_dataset(task.input, split=split)
        if isinstance(dataset, datasets.DatasetDict):
            dataset = dataset[split]
        wanted = [c for c in columns if c in dataset.column_names]
        for record in dataset.select_columns(wanted):
            yield row, record
            row += 1
    except Exception as err:
        yield row, ReadError(_describe(err))


def weight(payload) -> int:
    """How much input a payload is, for cutting tasks into chunks: bytes of a line or file,
    characters of a row's strings."""
    if isinstance(payload, bytes):
        return len(payload) + 1
    if isinstance(payload, dict):
        return 1 + sum(len(v) for v in payload.values() if isinstance(v, str))
    return 1


def chunked(items, chunk_size: int):
    """(index, final, [(row, payload), ...]) chunks of about `chunk_size` input bytes.

    Boundaries depend only on the input, so a resumed run cuts a task exactly as the first
    attempt did and can skip the chunks already committed without parsing them.
    """
    current, size, index = [], 0, 0
    for item in items:
        if size >= chunk_size:
            yield index, False, current
            current, size, index = [], 0, index + 1
        current.append(item)
        size += weight(item[1])
    yield index, True, current
