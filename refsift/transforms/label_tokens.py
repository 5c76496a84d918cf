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
from apache_beam.utils.shared import Shared

from refsift.kernels import selection
from refsift.transforms.shared_models import shared_tokenizer

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
        if self.mode not in TOKEN_MODES:
            raise ValueError(f"--tokens must be one of {', '.join(TOKEN_MODES)}, not {self.mode!r}")
        if self.scope not in SCOPES:
            raise ValueError(f"--scope must be one of {', '.join(SCOPES)}, not {self.scope!r}")
        if not 0 < self.ratio <= 1:  # also refuses NaN
            raise ValueError(f"--ratio must be in (0, 1], got {self.ratio:g}")

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
        "text": text,
        "input_ids": ids,
        "attention_mask": [1] * len(ids),
        "labels": selection.labels(ids, selected),
    }


def window_text(tokenizer, window: dict, prefix: int | None) -> str:
    """What a window says, decoded from its token ids (what the model trains on), without
    the prefix token that opens a document's first window."""
    ids = window["token_ids"]
    if prefix is not None and window["token_start"] == 0 and ids and ids[0] == prefix:
        ids = ids[1:]
    return tokenizer.decode(ids)


class _LabelFn(beam.DoFn):
    def __init__(self, rule: TokenRule, tokenizer: str, prefix: int | None, trust_remote_code: bool):
        self._rule, self._spec, self._prefix, self._trust = rule, tokenizer, prefix, trust_remote_code
        self._shared = Shared()
        self._rows = Metrics.counter("LabelTokens", "rows")

    def setup(self):
        self._tokenizer = shared_tokenizer(self._shared, self._spec, self._trust)

    def process(self, window, chosen, threshold=None):
        if window["doc_id"] not in chosen:
            return
        source, times = chosen[window["doc_id"]]
        text = window_text(self._tokenizer, window, self._prefix)
        row = export_row(window, source, text, self._rule.select(window, threshold))
        for _ in range(times):
            self._rows.inc()
            yield row


class LabelTokens(beam.PTransform):
    """Tokens rows of the chosen documents -> export rows, each repeated as often as chosen.

    The windows stream past a side input holding only the chosen documents' ids (no join
    over the token table), and a window's text is decoded from its token ids, which is
    exactly what the model is trained on.

    Args:
      rule: the TokenRule.
      chosen: side input (AsDict) doc_id -> (source, times).
      tokenizer: model spec of the run's shared tokenizer.
      prefix: the run's prefix token id (left out of the decoded text), or None.
      threshold: side input (AsSingleton) of the global excess threshold, or None.
      trust_remote_code: passed to `from_pretrained`.
    """

    def __init__(
        self,
        *,
        rule: TokenRule,
        chosen,
        tokenizer: str,
        prefix: int | None = None,
        threshold=None,
        trust_remote_code: bool = False,
    ):
        super().__init__()
        self._fn = _LabelFn(rule, tokenizer, prefix, trust_remote_code)
        self._side = (chosen,) if threshold is None else (chosen, threshold)

    def expand(self, windows):
        return windows | "Label" >> beam.ParDo(self._fn, *self._side)
