"""`ScoreTokens`: adds one role's per-token losses to each chunk's windows.

Model loading: a plain DoFn whose `setup()` takes the model from `Shared`, rather than
RunInference. Scoring wants batches of similar length (padding is wasted compute), and
RunInference's BatchElements groups by arrival order, not length; here a chunk's windows
are sorted by length and packed into batches of at most `batch_size x max_length` padded
tokens (on a CPU, at most 4,096; see `refsift.kernels.nll.window_nll`).
Losses come back to the host once per batch and are kept as float32 arrays. Chaining one
ScoreTokens per role keeps each step one model and one output column.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from refsift.jobs import progress
from refsift.kernels.nll import window_nll
from refsift.models import pad_id
from refsift.transforms.shared_models import shared_model, shared_tokenizer


class _ScoreFn(beam.DoFn):
    def __init__(self, role, aliases, model, batch_size, max_length, device, dtype, trust_remote_code, run):
        self._role, self._aliases, self._spec, self._run = role, aliases, model, run
        self._batch_size, self._max_length = batch_size, max_length
        self._load_args = dict(device=device, dtype=dtype, trust_remote_code=trust_remote_code)
        self._shared = Shared()
        self._tokens = Metrics.counter("ScoreTokens", f"tokens_{role}")

    def setup(self):
        self._model = shared_model(self._shared, self._spec, **self._load_args)
        tokenizer = shared_tokenizer(self._shared, self._spec, self._load_args["trust_remote_code"])
        self._pad = pad_id(tokenizer)
        self._progress = progress.Counter(self._run, f"score-{self._role}")

    def _count(self, tokens: int) -> None:
        self._tokens.inc(tokens)
        self._progress.add(**{f"tokens_{self._role}": tokens})

    def process(self, chunk):
        nll = window_nll(
            self._model, chunk.windows, self._batch_size, self._max_length, self._pad, on_batch=self._count
        )
        for role in (self._role, *self._aliases):
            chunk.windows.nll[role] = nll
        yield chunk

    def teardown(self):
        self._progress.flush()


class ScoreTokens(beam.PTransform):
    """Scores chunks' windows under one role's model.

    Args:
      role: the role name; the losses land in `windows.nll[role]` (column `nll_<role>`).
      aliases: other roles the same model plays (a ladder's first model as `model`, say):
        they get the same losses, scored once.
      model: the role's model spec (hub id, local directory or alias).
      batch_size: windows of `max_length` tokens per forward pass; shorter windows are
        packed more to a batch, within the same number of padded tokens.
      max_length: the longest window.
      device: "auto", "cpu", "cuda", ...
      dtype: "auto" (fp32 on CPU, bf16 on CUDA), "float32", "bfloat16" or "float16".
      trust_remote_code: passed to `from_pretrained`.
      run: the run directory, for the live progress line (None: no progress files).
    """

    def __init__(
        self,
        *,
        role: str,
        model: str,
        aliases: tuple[str, ...] = (),
        batch_size: int = 8,
        max_length: int = 512,
        device: str = "auto",
        dtype: str = "auto",
        trust_remote_code: bool = False,
        run: str | None = None,
    ):
        super().__init__()
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self._fn = _ScoreFn(role, tuple(aliases), model, batch_size, max_length, device, dtype, trust_remote_code, run)

    def expand(self, chunks):
        return chunks | "Score" >> beam.ParDo(self._fn)
