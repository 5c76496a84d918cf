"""`MinHashDocuments`: a chunk's documents -> their MinHash signatures, LSH band keys and
content hashes (`refsift.kernels.minhash`), as the chunk's `documents` and `bands` tables.

Only numbers leave a chunk for the clustering job (a document's key and its band keys,
sorted per band), never text: the text's first characters stay in `documents`, for the
report.
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics import Metrics

from refsift.jobs import progress
from refsift.kernels import minhash, words
from refsift.schemas.dedup import DOCUMENTS_SCHEMA, HEAD, bands_schema

KEY_BITS = 20  # a chunk holds fewer than 2^20 documents, a task fewer than 2^20 chunks


def doc_keys(chunk) -> np.ndarray:
    """Numbers that order the chunk's documents as the input does: (task, chunk, position)."""
    base = ((chunk.task << KEY_BITS) + chunk.index) << KEY_BITS
    return base + np.arange(len(chunk.documents), dtype=np.int64)


def chunk_tables(chunk, settings: minhash.MinHashSettings) -> dict[str, pa.Table]:
    docs = chunk.documents
    keys = doc_keys(chunk)
    texts = [d["text"] for d in docs]
    sigs, has = minhash.signatures(texts, settings)
    bands = minhash.band_keys(sigs, settings)
    bands[~has] = minhash.unique_keys(keys[~has])[:, None]  # no signature: collides with nothing
    hashes = [minhash.content_hash(t) for t in texts]
    exact = np.array([minhash.content_key(h) for h in hashes], dtype=np.uint64)
    for doc, text in zip(docs, texts):
        doc["n_tokens"], doc["n_bytes"] = words.measure(text)
    documents = {
        "doc_key": keys,
        **{name: [d[name] for d in docs] for name in ("doc_id", "source", "input", "row", "n_tokens", "n_bytes")},
        "content_hash": hashes,
        "minhash": pa.array([list(s) if h else [] for s, h in zip(sigs, has)], type=pa.list_(pa.uint64())),
        "head": [t[:HEAD] for t in texts],
    }
    columns = {}
    for name, values in [*((str(b), bands[:, b]) for b in range(settings.bands)), ("x", exact)]:
        order = np.argsort(values, kind="stable")
        columns[f"key_{name}"], columns[f"doc_{name}"] = values[order], keys[order]
    return {
        "documents": pa.Table.from_pydict(
            {f.name: documents[f.name] for f in DOCUMENTS_SCHEMA}, schema=DOCUMENTS_SCHEMA
        ),
        "bands": pa.Table.from_pydict(columns, schema=bands_schema(settings.bands)),
    }


class _MinHashFn(beam.DoFn):
    def __init__(self, settings, run):
        self._settings, self._run = settings, run
        self._documents = Metrics.counter("MinHashDocuments", "documents")

    def setup(self):
        self._progress = progress.Counter(self._run, "dedup")

    def process(self, chunk):
        if chunk.documents:
            chunk.tables.update(chunk_tables(chunk, self._settings))
        self._documents.inc(len(chunk.documents))
        self._progress.add(tokens_minhash=sum(d["n_tokens"] for d in chunk.documents))
        yield chunk

    def teardown(self):
        self._progress.flush()


class MinHashDocuments(beam.PTransform):
    """Chunks -> chunks with their `documents` and `bands` tables (`refsift.schemas.dedup`).

    Args:
      settings: the MinHash scheme (`refsift.kernels.minhash.MinHashSettings`).
      run: the run directory, for the live progress line (None: none).
    """

    def __init__(self, *, settings: minhash.MinHashSettings, run: str | None = None):
        super().__init__()
        self._fn = _MinHashFn(settings, run)

    def expand(self, chunks):
        return chunks | "MinHash" >> beam.ParDo(self._fn)
