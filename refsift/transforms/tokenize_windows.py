"""`TokenizeWindows`: documents -> model-sized windows of token ids with character spans.

Window layout (see `refsift.kernels.windows`): each window after the first repeats the last
`context` tokens of the one before as left context, so every token but the document's first
is scored exactly once. Documents with fewer than two tokens are rejected as `too_short`.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from refsift.kernels.windows import plan_windows
from refsift.transforms.read_corpus import rejection
from refsift.transforms.shared_models import shared_tokenizer


class _TokenizeFn(beam.DoFn):
    def __init__(self, tokenizer: str, max_length: int, context: int, trust_remote_code: bool):
        self._spec, self._max_length, self._context = tokenizer, max_length, context
        self._trust = trust_remote_code
        self._shared = Shared()
        self._windows = Metrics.counter("TokenizeWindows", "windows")

    def setup(self):
        self._tokenizer = shared_tokenizer(self._shared, self._spec, self._trust)

    def process(self, doc):
        encoding = self._tokenizer(doc["text"], add_special_tokens=False, return_offsets_mapping=True)
        ids, spans = encoding["input_ids"], encoding["offset_mapping"]
        windows = plan_windows(len(ids), self._max_length, self._context)
        if not windows:
            Metrics.counter("TokenizeWindows", "rejected_too_short").inc()
            record = {"id": doc["doc_id"], "text": doc["text"]}
            yield beam.pvalue.TaggedOutput("rejected", rejection(doc["input"], doc["row"], "too_short", record))
            return
        for w in windows:
            self._windows.inc()
            yield {
                "doc_id": doc["doc_id"],
                "window": w.index,
                "token_start": w.start,
                "score_from": w.score_from,
                "token_ids": ids[w.start : w.end],
                "char_start": [s for s, _ in spans[w.start : w.end]],
                "char_end": [e for _, e in spans[w.start : w.end]],
            }


class TokenizeWindows(beam.PTransform):
    """Tokenizes documents into windows; returns {"windows", "rejected"} PCollections.

    Args:
      tokenizer: model spec whose tokenizer all roles share.
      max_length: tokens per window, context included.
      context: tokens each window repeats from the previous one as unscored left context.
      trust_remote_code: passed to `from_pretrained`.
    """

    def __init__(self, *, tokenizer: str, max_length: int = 512, context: int = 64, trust_remote_code: bool = False):
        super().__init__()
        plan_windows(0, max_length, context)  # validates the two numbers now, not on a worker
        self._fn = _TokenizeFn(tokenizer, max_length, context, trust_remote_code)

    def expand(self, documents):
        out = documents | "Tokenize" >> beam.ParDo(self._fn).with_outputs("rejected", main="windows")
        return {"windows": out.windows, "rejected": out.rejected}
