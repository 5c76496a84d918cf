"""`ReadCorpus`: tasks -> chunks of documents, and a `rejected` row for every record that
is not one.

Formats: JSONL (also compressed), Parquet, plain text (one document per file, or per line)
and Hugging Face datasets (a `save_to_disk` directory, or a name for `load_dataset`), from
any Beam filesystem. Each task (see `refsift.corpus.tasks`) is read by one worker and cut
into chunks of about `chunk_size` bytes of input, which flow on one at a time: memory holds
one chunk, whatever the size of the file. Chunks a resumed run already committed are
skipped without being parsed.

Ids must be unique: the `duplicates` side input (from `IndexCorpus`) holds the first
position of every repeated id, and every later occurrence is rejected as `duplicate_id`.
With a dedup run (`refsift dedup`), the `skip` side input holds the ids of the copies it
did not keep: each is rejected as `near_duplicate`, its detail naming the kept document.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from refsift.config import DEFAULT_CHUNK_SIZE
from refsift.corpus import records
from refsift.corpus.chunk import Chunk
from refsift.corpus.formats import ReadError, Reading, chunked, payloads
from refsift.corpus.records import Fields


def read_chunk(
    task, index: int, final: bool, items, fields: Fields, first_row: int, duplicates: dict, skip: dict = None
) -> Chunk:
    """A chunk of documents and rejections from (row, payload) items of `task`."""
    chunk = Chunk(task.index, index, final)
    for row, payload in items:
        parsed = records.parse(payload, task.format, fields)
        if parsed is None:  # a blank line: not a record
            continue
        at = first_row + row
        if isinstance(parsed, tuple):
            reason, detail = parsed
            lost = payload.lost if isinstance(payload, ReadError) and payload.lost else 1
            raw = records.raw_record(payload)
            chunk.rejected += [records.rejection(task.input, at + i, reason, raw, detail) for i in range(lost)]
            chunk.read += lost
            continue
        chunk.read += 1
        doc = records.to_document(parsed, task.input, at)
        first = duplicates.get(doc["doc_id"])
        if first is not None and tuple(first) != (task.input, task.start, row):
            record = {"id": doc["doc_id"], "text": doc["text"]}
            chunk.rejected.append(records.rejection(task.input, at, "duplicate_id", record, f"first at {first[0]}"))
        elif skip and doc["doc_id"] in skip:
            record = {"id": doc["doc_id"], "text": doc["text"]}
            chunk.rejected.append(records.rejection(task.input, at, "near_duplicate", record, skip[doc["doc_id"]]))
        else:
            chunk.documents.append(doc)
    return chunk


class _ReadFn(beam.DoFn):
    def __init__(self, fields, chunk_size, reading, done):
        self._fields, self._chunk_size, self._reading, self._done = fields, chunk_size, reading, done
        self._read = Metrics.counter("ReadCorpus", "documents_read")

    def process(self, task, first_rows, duplicates, skip=None):
        first_row = task.first_row if task.first_row is not None else first_rows[task.index]
        done = self._done.get(task.index, ())
        items = payloads(task, self._fields.columns(), self._reading)
        for index, final, chunk_items in chunked(items, self._chunk_size):
            if index in done:
                continue
            chunk = read_chunk(task, index, final, chunk_items, self._fields, first_row, duplicates, skip)
            self._read.inc(chunk.read)
            for row in chunk.rejected:
                Metrics.counter("ReadCorpus", f"rejected_{row['reason']}").inc()
            yield chunk


class ReadCorpus(beam.PTransform):
    """Tasks -> `Chunk`s of documents and rejections.

    Args:
      fields: which record fields hold the text, id, source, prompt or messages.
      first_rows: side input (AsSingleton) task index -> row of its first record, for
        byte-range tasks (from `IndexCorpus`).
      duplicates: side input (AsDict) id -> position of its first occurrence, for ids
        that occur more than once (from `IndexCorpus`).
      chunk_size: bytes of input per chunk.
      reading: how records are read (`refsift.corpus.formats.Reading`).
      done: task index -> chunk indices already committed (a resumed run skips them).
      skip: side input (AsDict) id -> why, for documents to reject as near duplicates (the
        copies a dedup run did not keep); None: none.
    """

    def __init__(
        self,
        *,
        fields: Fields,
        first_rows,
        duplicates,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        reading: Reading = Reading(),
        done: dict[int, set[int]] | None = None,
        skip=None,
    ):
        super().__init__()
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self._fn = _ReadFn(fields, chunk_size, reading, done or {})
        self._side = (first_rows, duplicates) if skip is None else (first_rows, duplicates, skip)

    def expand(self, tasks):
        return tasks | "Read" >> beam.ParDo(self._fn, *self._side)
