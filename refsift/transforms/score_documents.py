"""`ScoreDocuments`: adds one role's per-document losses to each chunk, for a model that
reads its own tokens (a ladder model whose tokenizer is not the run's).

Its losses cannot line up with the run's tokens, so they are kept per document: total nats
and scored tokens, from which `SummarizeExamples` makes `nll_<role>` (per the model's own
token) and `bpb_<role>` (bits per byte of the same text, comparable across tokenizers; the
measure PreSelect ranks models by). The documents are encoded and windowed by the rules
of the run (`--prefix`, `--max-length`, `--context`) with the role's own tokenizer.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from refsift.jobs import progress
from refsift.kernels.encode import prefix_id
from refsift.kernels.nll import document_nll
from refsift.transforms.shared_models import shared_model, shared_tokenizer


class _ScoreDocumentsFn(beam.DoFn):
    def __init__(self, role, aliases, model, prefix, batch_size, max_length, context, device, dtype, trust, run):
        self._roles, self._spec, self._run = (role, *aliases), model, run
        self._prefix, self._shape = prefix, dict(batch_size=batch_size, max_length=max_length, context=context)
        self._load_args = dict(device=device, dtype=dtype, trust_remote_code=trust)
        self._shared = Shared()
        self._tokens = Metrics.counter("ScoreDocuments", f"tokens_{role}")

    def setup(self):
        self._model = shared_model(self._shared, self._spec, **self._load_args)
        self._tokenizer = shared_tokenizer(self._shared, self._spec, self._load_args["trust_remote_code"])
        self._prefix_id = prefix_id(self._tokenizer, self._prefix)
        self._progress = progress.Counter(self._run, f"score-{self._roles[0]}")

    def process(self, chunk):
        totals, counts = document_nll(
            self._model, self._tokenizer, chunk.documents, prefix=self._prefix_id, **self._shape
        )
        for role in self._roles:
            chunk.document_nll[role] = (totals, counts)
        self._tokens.inc(int(counts.sum()))
        self._progress.add(**{f"tokens_{self._roles[0]}": int(counts.sum())})
        yield chunk

    def teardown(self):
        self._progress.flush()


class ScoreDocuments(beam.PTransform):
    """Scores chunks' documents under one role's model with its own tokenizer.

    Args:
      role: the role name; totals land in `chunk.document_nll[role]`.
      model: the role's model spec (its tokenizer is loaded from it too).
      aliases: other roles the same model plays.
      prefix: "auto", "bos", "eos" (the role's own special tokens).
      batch_size, max_length, context: as for `ScoreTokens` and `TokenizeWindows`.
      device, dtype, trust_remote_code: as for `ScoreTokens`.
      run: the run directory, for the live progress line (None: none).
    """

    def __init__(
        self,
        *,
        role: str,
        model: str,
        aliases: tuple[str, ...] = (),
        prefix: str = "auto",
        batch_size: int = 8,
        max_length: int = 512,
        context: int = 64,
        device: str = "auto",
        dtype: str = "auto",
        trust_remote_code: bool = False,
        run: str | None = None,
    ):
        super().__init__()
        self._fn = _ScoreDocumentsFn(
            role, tuple(aliases), model, prefix, batch_size, max_length, context, device, dtype, trust_remote_code, run
        )

    def expand(self, chunks):
        return chunks | "Score" >> beam.ParDo(self._fn)
