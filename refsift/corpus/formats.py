"""Reading a task's raw records, format by format, without ever raising on bad data.

`payloads(task, columns, reading)` yields (row, payload): `row` counts from the task's start
(every physical line for line formats, blank ones too), and `payload` is the raw record: the
line's bytes (JSONL, text per line), the whole file's bytes (text), a dict of the wanted
columns (Parquet, Hugging Face datasets), a `TooLarge` for a record over
`reading.max_record_bytes` (a line is skipped to its end without being held whole), or a
`ReadError` when the input cannot be read past that point (a truncated or corrupt
compressed stream, a corrupt Parquet page, a file that vanished). After a `ReadError`
nothing more comes from the task, so a damaged file is reported at the place it breaks
instead of being silently shortened.

Every compression refsift accepts (gzip, bzip2, xz/lzma, zstd, deflate) is read by a
decompressor that raises when the stream ends before its end marker; a truncated file is
never taken for a short one.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from refsift.config import DEFAULT_MAX_RECORD_BYTES
from refsift.corpus.tasks import Task

UTF8_BOM = b"\xef\xbb\xbf"
HEAD = 4096  # bytes of a rejected record that are kept


@dataclass(frozen=True)
class Reading:
    """How records are read from a task: the same in every pass over the corpus.

    Args:
      per_line: text files hold one document per line.
      split: the split of a Hugging Face dataset.
      max_record_bytes: a record larger than this is a `too_large` rejection; JSONL and
        text-per-line records are skipped without being held in memory.
    """

    per_line: bool = False
    split: str = "train"
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES

    def __post_init__(self):
        if self.max_record_bytes < 1:
            raise ValueError("max_record_bytes must be positive")


@dataclass(frozen=True)
class ReadError:
    """The input could not be read from this row on; `lost` rows are known to be lost
    (Parquet knows its row counts), None when unknown (a truncated compressed stream)."""

    detail: str
    lost: int | None = None


@dataclass(frozen=True)
class TooLarge:
    """A record over the size limit: `size` bytes (at least), of which `head` is the start."""

    size: int
    head: bytes
    limit: int


def _describe(err: BaseException) -> str:
    text = " ".join(str(err).split())[:300]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def payloads(task: Task, columns: list[str], reading: Reading = Reading()) -> Iterator[tuple]:
    """(row, payload) for every record of `task`; see the module docstring."""
    limit = reading.max_record_bytes
    if task.format == "parquet":
        rows = _parquet_rows(task, columns)
    elif task.format == "hf":
        rows = _dataset_rows(task, columns, reading.split)
    elif task.format == "text" and not reading.per_line:
        yield from _whole_file(task, limit)
        return
    else:
        yield from _lines(task, limit)
        return
    for row, payload in rows:  # columns of a row are read whole by their format; only checked here
        if isinstance(payload, dict) and weight(payload) > limit:
            payload = TooLarge(weight(payload), repr(payload)[:HEAD].encode("utf-8", "backslashreplace"), limit)
        yield row, payload


class _Strict(io.RawIOBase):
    """A decompressed stream over `raw` that raises EOFError when the input ends inside a
    frame (zstd and deflate decompressors say whether they reached the end, but their
    readers stop silently). Consecutive frames are read one after another."""

    def __init__(self, raw, new_decompressor):
        self._raw, self._new = raw, new_decompressor
        self._decompressor, self._fed, self._pending, self._ended = new_decompressor(), False, b"", False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending and not self._ended:
            data = self._raw.read(1 << 14)
            if not data:
                self._ended = True
                if self._fed and not self._decompressor.eof:
                    raise EOFError("the compressed stream ends before its end marker: the file is truncated")
                break
            while data:
                if self._decompressor.eof:  # another frame follows
                    self._decompressor, self._fed = self._new(), False
                self._fed = True
                self._pending += self._decompressor.decompress(data)
                data = self._decompressor.unused_data if self._decompressor.eof else b""
        n = min(len(buffer), len(self._pending))
        buffer[:n], self._pending = self._pending[:n], self._pending[n:]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_decompressed(path: str):
    """A binary stream of a file, decompressed by its suffix, that raises on a truncated
    stream. Beam's own readers end such a file early without a word."""
    import bz2
    import gzip
    import lzma
    import zlib

    kind = CompressionTypes.detect_compression_type(path)
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    if kind == CompressionTypes.UNCOMPRESSED:
        return raw
    if kind == CompressionTypes.GZIP:
        return gzip.GzipFile(fileobj=raw)
    if kind == CompressionTypes.BZIP2:
        return bz2.BZ2File(raw)
    if kind == CompressionTypes.LZMA:
        return lzma.LZMAFile(raw)
    if kind == CompressionTypes.ZSTD:
        import zstandard

        return io.BufferedReader(_Strict(raw, lambda: zstandard.ZstdDecompressor().decompressobj()))
    if kind == CompressionTypes.DEFLATE:
        return io.BufferedReader(_Strict(raw, lambda: zlib.decompressobj(zlib.MAX_WBITS)))
    raise ValueError(f"{path}: unsupported compression {kind}")


def _whole_file(task: Task, limit: int) -> Iterator[tuple[int, bytes | TooLarge | ReadError]]:
    try:
        with open_decompressed(task.input) as handle:
            data = handle.read(limit + 1)
            if len(data) > limit:
                size = len(data) + sum(len(block) for block in iter(lambda: handle.read(1 << 20), b""))
                yield 0, TooLarge(size, data[:HEAD], limit)
                return
    except Exception as err:
        yield 0, ReadError(_describe(err))
        return
    yield 0, data.removeprefix(UTF8_BOM)


def _lines(task: Task, limit: int) -> Iterator[tuple[int, bytes | TooLarge | ReadError]]:
    """Physical lines (newline stripped) of the task's byte range; a line over `limit`
    bytes is read through in pieces and comes as a `TooLarge`."""
    row = 0
    split = task.start or task.end is not None
    try:
        opened = (
            FileSystems.open(task.input, compression_type=CompressionTypes.UNCOMPRESSED)
            if split
            else open_decompressed(task.input)
        )
        with opened as handle:
            position = task.start
            if task.start:
                handle.seek(task.start - 1)
                position += _skip_line(handle) - 1  # the rest of a line the task before owns
            while task.end is None or position < task.end:
                line = handle.readline(limit + 2)  # a record of `limit` bytes and its "\r\n"
                if not line:
                    break
                record = line.rstrip(b"\r\n")
                if len(record) > limit:
                    size = len(line) + (0 if line.endswith(b"\n") else _skip_line(handle))
                    position += size
                    yield row, TooLarge(size, line[:HEAD], limit)
                    row += 1
                    continue
                position += len(line)
                if row == 0 and task.start == 0:
                    record = record.removeprefix(UTF8_BOM)
                yield row, record
                row += 1
    except Exception as err:  # zlib.error, EOFError, OSError, ...: the rest of the file is unreadable
        yield row, ReadError(_describe(err))


def _skip_line(handle) -> int:
    """Reads to the end of the current line in pieces; returns the bytes read."""
    skipped = 0
    while True:
        piece = handle.readline(1 << 20)
        skipped += len(piece)
        if not piece or piece.endswith(b"\n"):
            return skipped


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
    if isinstance(payload, TooLarge):
        return 1 + len(payload.head)
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
