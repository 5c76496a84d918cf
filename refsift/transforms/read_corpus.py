"""`ReadCorpus`: input files -> documents, and a `rejected` row for every record that is not one.

Formats: JSONL (also gzipped), Parquet, plain text (one document per file, or per line) and
Hugging Face datasets (a `save_to_disk` directory, or a name for `load_dataset`). Files are
matched with Beam's filesystems (local, gs://, ...) and each file is parsed whole by one
worker, so every record keeps its (input, row) provenance and a stable default id.

A document is a dict {doc_id, source, text, input, row}. Ids must be unique: after reading,
documents are grouped by id and every repeat after the first (by input, then row) is
rejected as `duplicate_id`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.metrics import Metrics

from refsift.schemas.rejected import RECORD_LIMIT

FORMATS = ("auto", "jsonl", "parquet", "text", "hf")
_SUFFIXES = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".txt": "text",
    ".md": "text",
    ".text": "text",
}


def detect_format(path: str) -> str | None:
    """Format from a file name, looking through a compression suffix."""
    name = PurePosixPath(path).name
    for compressed in (".gz", ".bz2", ".zst", ".deflate"):
        name = name.removesuffix(compressed)
    return _SUFFIXES.get(PurePosixPath(name).suffix)


def is_saved_dataset(path: str) -> bool:
    """A local directory written by `datasets` `save_to_disk` (a Dataset or a DatasetDict)."""
    return any(Path(path, name).is_file() for name in ("state.json", "dataset_dict.json"))


def source_name(path: str) -> str:
    """Default source label: the file name without format or compression suffixes."""
    name = PurePosixPath(path.rstrip("/")).name
    while PurePosixPath(name).suffix in {*_SUFFIXES, ".gz", ".bz2", ".zst", ".deflate", ".arrow"}:
        name = PurePosixPath(name).stem
    return name


@dataclass(frozen=True)
class Fields:
    """Which record fields hold what.

    Args:
      text: the field holding the document text.
      id: the id field; None means `id` when a record has one, else a stable hash of the
        input path and row index.
      source: the field holding the domain label; None means the input file's stem.
    """

    text: str = "text"
    id: str | None = None
    source: str | None = None


def rejection(path: str, row: int, reason: str, record) -> dict:
    """A `rejected` row; the record is kept as text, cut to 4 KiB."""
    if isinstance(record, bytes):
        record = record.decode("utf-8", errors="backslashreplace")
    elif not isinstance(record, str):
        record = json.dumps(record, ensure_ascii=False, default=str)
    return {"input": path, "row": row, "reason": reason, "record": record[:RECORD_LIMIT]}


def to_document(record: dict, path: str, row: int, fields: Fields) -> dict:
    """A document dict from a parsed record, or a rejection dict (it has a `reason`)."""
    if fields.text not in record or record[fields.text] is None:
        return rejection(path, row, "missing_text", record)
    text = record[fields.text]
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return rejection(path, row, "invalid_utf8", record)
    if not isinstance(text, str):
        return rejection(path, row, "non_string_text", record)
    if not text.strip():
        return rejection(path, row, "empty_text", record)
    id_field = fields.id or "id"
    if record.get(id_field) is not None:
        doc_id = str(record[id_field])
    elif fields.id is not None:
        return rejection(path, row, "missing_id", record)
    else:
        doc_id = hashlib.sha1(f"{path}:{row}".encode()).hexdigest()[:16]
    source = record.get(fields.source) if fields.source else None
    return {
        "doc_id": doc_id,
        "source": str(source) if source is not None else source_name(path),
        "text": text,
        "input": path,
        "row": row,
    }


def parse_jsonl(stream, path: str, fields: Fields):
    """Documents and rejections from a JSONL byte stream; blank lines are not records."""
    for row, raw in enumerate(iter(stream.readline, b"")):
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield rejection(path, row, "invalid_utf8", raw)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            yield rejection(path, row, "invalid_json", raw)
            continue
        if not isinstance(record, dict):
            yield rejection(path, row, "invalid_json", raw)
            continue
        yield to_document(record, path, row, fields)


def parse_text(stream, path: str, fields: Fields, per_line: bool):
    """One document per file, or per non-blank line."""
    lines = iter(stream.readline, b"") if per_line else [stream.read()]
    for row, raw in enumerate(lines):
        if per_line and not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield rejection(path, row, "invalid_utf8", raw)
            continue
        yield to_document({fields.text: text.rstrip("\r\n") if per_line else text}, path, row, fields)


def parse_parquet(stream, path: str, fields: Fields):
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(stream).iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            yield to_document(record, path, row, fields)
            row += 1


def parse_hf(path: str, fields: Fields, split: str):
    """Rows of a `save_to_disk` directory (one split, or a DatasetDict's `split`) or a hub dataset."""
    import datasets

    try:
        dataset = datasets.load_from_disk(path)
    except FileNotFoundError:
        dataset = datasets.load_dataset(path, split=split)
    if isinstance(dataset, datasets.DatasetDict):
        dataset = dataset[split]
    for row, record in enumerate(dataset):
        yield to_document(record, path, row, fields)


class _ParseFn(beam.DoFn):
    """Parses one matched file (or one HF dataset path) into documents and rejections."""

    def __init__(self, fmt: str, fields: Fields, text_per_line: bool, hf_split: str):
        self._fmt, self._fields, self._per_line, self._split = fmt, fields, text_per_line, hf_split
        self._read = Metrics.counter("ReadCorpus", "documents_read")

    def process(self, element):
        if self._fmt == "hf":
            records = parse_hf(element, self._fields, self._split)
        else:
            path = element.metadata.path
            fmt = self._fmt if self._fmt != "auto" else detect_format(path)
            if fmt == "parquet":
                stream = element.open(compression_type=CompressionTypes.UNCOMPRESSED)
                records = parse_parquet(stream, path, self._fields)
            else:
                stream = element.open()
                if fmt == "text":
                    records = parse_text(stream, path, self._fields, self._per_line)
                else:
                    records = parse_jsonl(stream, path, self._fields)
        for record in records:
            self._read.inc()
            if "reason" in record:
                Metrics.counter("ReadCorpus", f"rejected_{record['reason']}").inc()
                yield beam.pvalue.TaggedOutput("rejected", record)
            else:
                yield record


class _KeepFirstFn(beam.DoFn):
    """Of the documents sharing an id, keeps the first by (input, row); rejects the rest."""

    def process(self, element):
        _, docs = element
        first, *repeats = sorted(docs, key=lambda d: (d["input"], d["row"]))
        yield first
        for doc in repeats:
            Metrics.counter("ReadCorpus", "rejected_duplicate_id").inc()
            record = {"id": doc["doc_id"], "text": doc["text"]}
            yield beam.pvalue.TaggedOutput("rejected", rejection(doc["input"], doc["row"], "duplicate_id", record))


class ReadCorpus(beam.PTransform):
    """Reads documents from files or datasets; returns {"documents", "rejected"} PCollections.

    Args:
      inputs: file patterns (globs; any Beam filesystem), or dataset paths/names for "hf".
      format: one of FORMATS; "auto" picks by file suffix (default JSONL).
      fields: which record fields hold the text, id and source.
      text_per_line: with format "text", one document per non-blank line.
      hf_split: the split to read from a DatasetDict or a hub dataset.
    """

    def __init__(
        self,
        *,
        inputs: list[str],
        format: str = "auto",
        fields: Fields = Fields(),
        text_per_line: bool = False,
        hf_split: str = "train",
    ):
        super().__init__()
        if not inputs:
            raise ValueError("ReadCorpus needs at least one input")
        if format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, not {format!r}")
        self._inputs, self._format, self._fields = list(inputs), format, fields
        self._per_line, self._split = text_per_line, hf_split

    def expand(self, pbegin):
        sources = pbegin | "Inputs" >> beam.Create(self._inputs)
        if self._format != "hf":
            sources = sources | "Match" >> fileio.MatchAll() | "Open" >> fileio.ReadMatches()
        parsed = sources | "Parse" >> beam.ParDo(
            _ParseFn(self._format, self._fields, self._per_line, self._split)
        ).with_outputs("rejected", main="documents")
        unique = (
            parsed.documents
            | "KeyById" >> beam.WithKeys(lambda doc: doc["doc_id"])
            | "GroupById" >> beam.GroupByKey()
            | "KeepFirst" >> beam.ParDo(_KeepFirstFn()).with_outputs("rejected", main="documents")
        )
        rejected = (parsed.rejected, unique.rejected) | "Rejected" >> beam.Flatten()
        return {"documents": unique.documents, "rejected": rejected}
