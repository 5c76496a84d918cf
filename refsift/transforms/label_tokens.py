"""`LabelTokens`: selected documents' windows -> training rows with Rho-1 token labels.

Which scored positions of a window are trained on:
- "all": every scored position;
- "excess": the top `ratio` by excess loss nll_model - nll_reference, ranked within each
  window (`scope="window"`, as Rho-1 ranks within a batch) or above one corpus-wide
  threshold (`scope="global"`);
- "random": a random `ratio` of the scored positions (the control in an ablation).
Positions that were not scored (a document's first token, repeated context) never are.
"""

from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
from apache_beam.metrics import Metrics

from refsift.kernels import selection

TOKEN_MODES = ("all", "excess", "random")
SCOPES = ("window", "global")


@dataclass(frozen=True)
class TokenRule:
    """How tokens are chosen inside the selected documents.

    Args:
      mode: one of TOKEN_MODES.
      ratio: share of scored tokens kept, in (0, 1].
      scope: "window" (exact count per window) or "global" (one threshold).
      seed: for mode "random".
    """

    mode: str = "all"
    ratio: float = 1.0
    scope: str = "window"
    seed: int = 0

    def __post_init__(self):
        if self.mode not in TOKEN_MODES or self.scope not in SCOPES or not 0 < self.ratio <= 1:
            raise ValueError(f"bad token rule {self}")

    def select(self, window: dict, threshold: float | None) -> list[bool]:
        scored = window["nll_model"]
        if self.mode == "all":
            return [s is not None for s in scored]
        if self.mode == "random":
            key = f"{window['doc_id']}:{window['window']}"
            return selection.random_ratio(scored, self.ratio, self.seed, key)
        scores = selection.excess(scored, window["nll_reference"])
        if self.scope == "global":
            return selection.above(scores, threshold)
        return selection.top_ratio(scores, self.ratio)


def export_row(window: dict, source: str, text: str, selected: list[bool]) -> dict:
    ids = window["token_ids"]
    return {
        "doc_id": window["doc_id"],
        "source": source,
        "window": window["window"],
        "text": text[window["char_start"][0] : window["char_end"][-1]],
        "input_ids": ids,
        "attention_mask": [1] * len(ids),
        "labels": selection.labels(ids, selected),
    }


class _LabelFn(beam.DoFn):
    def __init__(self, rule: TokenRule):
        self._rule = rule
        self._rows = Metrics.counter("LabelTokens", "rows")

    def process(self, element, threshold=None):
        _, joined = element
        if not joined["selected"]:
            return
        (repeats,), ((source, text),) = joined["selected"], joined["documents"]
        yield from self._rows_of(joined["windows"], source, text, repeats, threshold)

    def _rows_of(self, windows, source, text, repeats, threshold):
        for window in windows:
            row = export_row(window, source, text, self._rule.select(window, threshold))
            for _ in range(repeats):
                self._rows.inc()
                yield row


class LabelTokens(beam.PTransform):
    """Joins {"selected": (doc_id, repeats), "documents": (doc_id, (source, text)),
    "windows": (doc_id, tokens row)} into export rows, each repeated `repeats` times.

    Args:
      rule: the TokenRule.
      threshold: side input (AsSingleton) of the global excess threshold, or None.
    """

    def __init__(self, *, rule: TokenRule, threshold=None):
        super().__init__()
        self._rule, self._threshold = rule, threshold

    def expand(self, joined):
        extra = () if self._threshold is None else (self._threshold,)
        return joined | "Join" >> beam.CoGroupByKey() | "Label" >> beam.ParDo(_LabelFn(self._rule), *extra)
