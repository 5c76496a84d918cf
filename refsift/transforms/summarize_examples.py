"""`SummarizeExamples`: a scored chunk -> its `examples` table, one row per document.

A document's windows are all in its chunk, so its per-role loss sums come straight from the
chunk's flat arrays (float64 sums with `np.bincount`): no join, nothing shuffled; a role
scored per document (`ScoreDocuments`) brings its sums along. Then the mean NLL per scored
token, bits per byte and the derived scores of `refsift.kernels.scores`.
"""

from __future__ import annotations

import math

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics import Metrics

from refsift.kernels import scores

DOCUMENT_COLUMNS = ("doc_id", "source", "text", "prompt", "messages", "input", "row", "n_tokens", "n_bytes")


def examples_table(
    chunk, roles: list[str], learning: tuple[str, str] | None, schema: pa.Schema, ladder: list[tuple[str, float]] = ()
) -> pa.Table:
    docs = chunk.documents
    w = chunk.windows
    n_tokens = w.document_sums(len(docs))
    n_bytes = np.asarray([d["n_bytes"] for d in docs], dtype=np.float64)
    columns = {name: [d[name] for d in docs] for name in DOCUMENT_COLUMNS}
    means, bpb = {}, {}
    for role in roles:
        if role in chunk.document_nll:  # a model reading its own tokens
            total, count = chunk.document_nll[role]
        else:
            total, count = w.document_sums(len(docs), w.nll[role]), n_tokens
        with np.errstate(divide="ignore", invalid="ignore"):
            means[role] = total / count
            bpb[role] = np.where(n_bytes > 0, total / (math.log(2) * np.maximum(n_bytes, 1)), np.nan)
        columns[f"nll_{role}"], columns[f"bpb_{role}"] = means[role], bpb[role]
    for name, values in scores.derive(means, learning, ladder, bpb).items():
        columns[name] = [None] * len(docs) if values is None else values
    arrays = []
    for field in schema:
        values = columns[field.name]
        if isinstance(values, np.ndarray):
            arrays.append(pa.array(values, type=field.type, mask=np.isnan(values)))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


class _SummarizeFn(beam.DoFn):
    def __init__(self, roles, learning, schema, ladder):
        self._roles, self._learning, self._schema, self._ladder = roles, learning, schema, ladder
        self._scored = Metrics.counter("SummarizeExamples", "documents_scored")

    def process(self, chunk):
        chunk.tables["examples"] = examples_table(chunk, self._roles, self._learning, self._schema, self._ladder)
        self._scored.inc(len(chunk.documents))
        yield chunk


class SummarizeExamples(beam.PTransform):
    """Scored chunks -> chunks with their `examples` table.

    Args:
      roles: role names in column order; every window carries losses for all of them.
      learning: the (first, last) roles of learning percentage, or None
        (`refsift.kernels.scores.learning_roles`).
      ladder: (role, benchmark score) of a ladder's models, for predictive strength.
    """

    def __init__(
        self, *, roles: list[str], learning: tuple[str, str] | None = None, ladder: list[tuple[str, float]] = ()
    ):
        from refsift.schemas import examples_schema

        super().__init__()
        if "model" not in roles:
            raise ValueError("the roles must include 'model'")
        if any(role not in roles for role, _ in ladder):
            raise ValueError("every ladder role must be one of the roles")
        self._fn = _SummarizeFn(list(roles), learning, examples_schema(list(roles)), list(ladder))

    def expand(self, chunks):
        return chunks | "Summarize" >> beam.ParDo(self._fn)
