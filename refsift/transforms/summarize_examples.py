"""`SummarizeExamples`: scored windows + documents -> one `examples` row per document.

Per-window loss sums are combined per document (in float64), joined with the document by
id, and turned into mean NLL, bits per byte and the derived scores of `refsift.scores`.
"""

from __future__ import annotations

import math

import apache_beam as beam
from apache_beam.metrics import Metrics

from refsift import scores


def window_sums(window: dict, roles: list[str]) -> tuple[str, tuple[int, list[float]]]:
    """(doc_id, (scored tokens, summed nats per role)) for one scored window."""
    n = len(window["token_ids"]) - window["score_from"]
    sums = [math.fsum(x for x in window[f"nll_{role}"] if x is not None) for role in roles]
    return window["doc_id"], (n, sums)


def add_sums(parts):
    n, total = 0, None
    for count, sums in parts:
        n += count
        total = list(sums) if total is None else [a + b for a, b in zip(total, sums)]
    return n, total


def example_row(doc: dict, n_tokens: int, sums: list[float], roles: list[str], checkpoints: list[str]) -> dict:
    """The examples row: mean nats per scored token, bits per UTF-8 byte, derived scores."""
    n_bytes = len(doc["text"].encode("utf-8"))
    nll = {role: total / n_tokens for role, total in zip(roles, sums)}
    row = {key: doc[key] for key in ("doc_id", "source", "text", "input", "row")}
    row.update(n_tokens=n_tokens, n_bytes=n_bytes)
    row.update({f"nll_{role}": value for role, value in nll.items()})
    row.update({f"bpb_{role}": total / (math.log(2) * n_bytes) for role, total in zip(roles, sums)})
    row.update(scores.derive(nll, checkpoints))
    return row


class _JoinFn(beam.DoFn):
    def __init__(self, roles, checkpoints):
        self._roles, self._checkpoints = roles, checkpoints
        self._scored = Metrics.counter("SummarizeExamples", "documents_scored")

    def process(self, element):
        _, joined = element
        if joined["sums"]:  # else no window: TokenizeWindows rejected the document as too_short
            (doc,), (n_sums,) = joined["documents"], joined["sums"]
            self._scored.inc()
            yield example_row(doc, *n_sums, self._roles, self._checkpoints)


class SummarizeExamples(beam.PTransform):
    """Joins {"documents", "windows"} PCollections into `examples` rows.

    Args:
      roles: role names in column order; each window carries `nll_<role>` for all of them.
      checkpoints: the checkpoint roles in training order (for learning percentage).
    """

    def __init__(self, *, roles: list[str], checkpoints: list[str] = ()):
        super().__init__()
        if "model" not in roles:
            raise ValueError("the roles must include 'model'")
        self._roles, self._checkpoints = list(roles), list(checkpoints)

    def expand(self, inputs):
        roles = self._roles
        sums = (
            inputs["windows"]
            | "WindowSums" >> beam.Map(window_sums, roles)
            | "DocumentSums" >> beam.CombinePerKey(add_sums)
        )
        documents = inputs["documents"] | "KeyById" >> beam.WithKeys(lambda doc: doc["doc_id"])
        return (
            {"documents": documents, "sums": sums}
            | "Join" >> beam.CoGroupByKey()
            | "ExampleRow" >> beam.ParDo(_JoinFn(roles, self._checkpoints))
        )
