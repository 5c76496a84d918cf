"""`TokenizeWindows`: a chunk's documents -> model-sized windows of token ids.

The fast tokenizer encodes the whole chunk in one batch (`refsift.kernels.encode`), with the
prefix token, prompt or chat template, and `refsift.kernels.windows.cut` lays the windows
out as flat numpy arrays. A document with nothing to score (one token and no prefix, or a
response that encodes to nothing) is rejected as `too_short`; a conversation the chat
template cannot render as `tokenizer_error`.
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from refsift.corpus.records import rejection
from refsift.kernels.encode import encode, prefix_id
from refsift.kernels.windows import check, cut
from refsift.transforms.shared_models import shared_tokenizer


def tokenize_chunk(chunk, tokenizer, prefix: int | None, max_length: int, context: int):
    """Adds windows to `chunk`; documents with nothing to score move to its rejections."""
    encoded = encode(tokenizer, chunk.documents, prefix)
    windows, scored = cut(encoded, max_length, context)
    keep = scored > 0
    for i, doc in enumerate(chunk.documents):
        doc["text"], doc["n_bytes"], doc["n_tokens"] = encoded.texts[i], int(encoded.n_bytes[i]), int(scored[i])
        if not keep[i]:
            reason, detail = ("tokenizer_error", encoded.errors[i]) if i in encoded.errors else ("too_short", None)
            record = {"id": doc["doc_id"], "text": doc["text"]}
            chunk.rejected.append(rejection(doc["input"], doc["row"], reason, record, detail))
    renumber = np.cumsum(keep) - 1
    windows.doc = renumber[windows.doc].astype(np.int32)
    chunk.documents = [doc for doc, k in zip(chunk.documents, keep) if k]
    chunk.windows = windows
    return chunk


class _TokenizeFn(beam.DoFn):
    def __init__(self, tokenizer: str, max_length: int, context: int, prefix: str, trust_remote_code: bool):
        self._spec, self._max_length, self._context = tokenizer, max_length, context
        self._prefix, self._trust = prefix, trust_remote_code
        self._shared = Shared()
        self._windows = Metrics.counter("TokenizeWindows", "windows")

    def setup(self):
        self._tokenizer = shared_tokenizer(self._shared, self._spec, self._trust)
        self._prefix_id = prefix_id(self._tokenizer, self._prefix)

    def process(self, chunk):
        rejected = len(chunk.rejected)
        chunk = tokenize_chunk(chunk, self._tokenizer, self._prefix_id, self._max_length, self._context)
        self._windows.inc(len(chunk.windows))
        for row in chunk.rejected[rejected:]:
            Metrics.counter("TokenizeWindows", f"rejected_{row['reason']}").inc()
        yield chunk


class TokenizeWindows(beam.PTransform):
    """Chunks -> chunks with windows.

    Args:
      tokenizer: model spec whose tokenizer all roles share.
      max_length: tokens per window, context included.
      context: tokens each window repeats from the previous one as unscored left context.
      prefix: "auto", "bos", "eos" or "none" (see `refsift.kernels.encode`).
      trust_remote_code: passed to `from_pretrained`.
    """

    def __init__(
        self, *, tokenizer: str, max_length: int = 512, context: int = 64, prefix: str = "auto", trust_remote_code=False
    ):
        super().__init__()
        check(max_length, context)  # validates the two numbers now, not on a worker
        self._fn = _TokenizeFn(tokenizer, max_length, context, prefix, trust_remote_code)

    def expand(self, chunks):
        return chunks | "Tokenize" >> beam.ParDo(self._fn)
