"""`ClassifyDocuments`: a chunk's documents -> their `examples` table with a fastText
classifier's score; no model forward pass, no torch.

The classifier is loaded once per worker process (`Shared`); a classifier on a remote
filesystem (gs://) is copied to a local temporary file first, since fastText reads only
local files. Documents with nothing for the classifier to read are not rejected: fastText
gives every text a score.
"""

from __future__ import annotations

import os
import tempfile

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from refsift.jobs import progress
from refsift.kernels import words
from refsift.transforms.shared_models import acquire


def local_copy(path: str) -> str:
    """`path` itself when local, else a copy of it in a temporary file."""
    from apache_beam.io.filesystems import FileSystems

    from refsift.jobs import rundir

    if rundir.is_local(path):
        return rundir.local_path(path)
    handle, local = tempfile.mkstemp(prefix="refsift-classifier-", suffix=".bin")
    with os.fdopen(handle, "wb") as out, FileSystems.open(path, compression_type="uncompressed") as src:
        for block in iter(lambda: src.read(1 << 22), b""):
            out.write(block)
    return local


def classified_table(chunk, scores: np.ndarray, schema: pa.Schema) -> pa.Table:
    """The chunk's `examples` table; documents get `n_tokens` (their words) and `n_bytes` on the way."""
    docs = chunk.documents
    for doc in docs:
        doc["n_tokens"], doc["n_bytes"] = words.measure(doc["text"])
    columns = {f.name: [d[f.name] for d in docs] for f in schema if f.name != "classifier_score"}
    return pa.Table.from_pydict({**columns, "classifier_score": scores}, schema=schema)


class _ClassifyFn(beam.DoFn):
    def __init__(self, classifier: str, label: str, run: str | None):
        self._path, self._label, self._run = classifier, label, run
        self._shared = Shared()
        self._scored = Metrics.counter("ClassifyDocuments", "documents")

    def setup(self):
        from refsift.kernels import classifier

        self._model = acquire(self._shared, f"classifier:{self._path}", lambda: classifier.load(local_copy(self._path)))
        self._progress = progress.Counter(self._run, "classify")

    def process(self, chunk):
        from refsift.kernels.classifier import scores
        from refsift.schemas.classified import CLASSIFIED_SCHEMA

        values = scores(self._model, [d["text"] for d in chunk.documents], self._label)
        chunk.tables["examples"] = classified_table(chunk, values, CLASSIFIED_SCHEMA)
        self._scored.inc(len(chunk.documents))
        self._progress.add(tokens_classifier=sum(d["n_tokens"] for d in chunk.documents))
        yield chunk

    def teardown(self):
        self._progress.flush()


class ClassifyDocuments(beam.PTransform):
    """Chunks -> chunks with their `examples` table (`refsift.schemas.classified`).

    Args:
      classifier: a fastText `.bin` file (local, or any Beam filesystem).
      label: the label whose probability is the score (e.g. "__label__1", "__label__hq").
      run: the run directory, for the live progress line (None: none).
    """

    def __init__(self, *, classifier: str, label: str, run: str | None = None):
        super().__init__()
        self._fn = _ClassifyFn(classifier, label, run)

    def expand(self, chunks):
        return chunks | "Classify" >> beam.ParDo(self._fn)
