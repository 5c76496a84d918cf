"""`ScoreTokens`: adds `nll_<role>`, the per-token loss under one role's model, to each window.

Model loading: a plain DoFn whose `setup()` takes the model from `Shared`, rather than
RunInference. Scoring wants batches of similar length (padding is wasted compute), and
RunInference's BatchElements groups by arrival order, not length; here each bundle's
windows are pooled, sorted by length and cut into batches. Chaining one ScoreTokens per
role keeps each step one model and one output column.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from refsift.models import pad_id
from refsift.transforms.pooling import PoolingDoFn
from refsift.transforms.shared_models import shared_model, shared_tokenizer

POOL_BATCHES = 16  # batches' worth of windows pooled before sorting by length


def score_windows(model, windows: list[dict], role: str, pad_id: int) -> list[dict]:
    """The batch's windows with `nll_<role>` added: a loss per position, None where unscored."""
    import torch

    from refsift.kernels.nll import token_nll

    width = max(len(w["token_ids"]) for w in windows)
    ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(windows), width), dtype=torch.long)
    for i, w in enumerate(windows):
        ids[i, : len(w["token_ids"])] = torch.tensor(w["token_ids"])
        mask[i, : len(w["token_ids"])] = 1
    device = next(model.parameters()).device
    nll = token_nll(model, ids.to(device), mask.to(device)).tolist()
    return [
        {**w, f"nll_{role}": [None] * w["score_from"] + row[w["score_from"] : len(w["token_ids"])]}
        for w, row in zip(windows, nll)
    ]


class _ScoreFn(PoolingDoFn):
    def __init__(self, role, model, batch_size, device, dtype, trust_remote_code):
        self._role, self._spec, self._batch_size = role, model, batch_size
        self.pool_size = POOL_BATCHES * batch_size
        self._load_args = dict(device=device, dtype=dtype, trust_remote_code=trust_remote_code)
        self._shared = Shared()
        self._tokens = Metrics.counter("ScoreTokens", f"tokens_{role}")

    def setup(self):
        self._model = shared_model(self._shared, self._spec, **self._load_args)
        tokenizer = shared_tokenizer(self._shared, self._spec, self._load_args["trust_remote_code"])
        self._pad_id = pad_id(tokenizer)

    def flush(self, pool):
        pool = sorted(pool, key=lambda w: len(w["token_ids"]))
        for i in range(0, len(pool), self._batch_size):
            batch = score_windows(self._model, pool[i : i + self._batch_size], self._role, self._pad_id)
            self._tokens.inc(sum(len(w["token_ids"]) - w["score_from"] for w in batch))
            yield from batch


class ScoreTokens(beam.PTransform):
    """Scores windows under one role's model.

    Args:
      role: the role name; the output column is `nll_<role>`.
      model: the role's model spec (hub id, local directory or alias).
      batch_size: windows per forward pass.
      device: "auto", "cpu", "cuda", ...
      dtype: "auto" (fp32 on CPU, bf16 on CUDA), "float32", "bfloat16" or "float16".
      trust_remote_code: passed to `from_pretrained`.
    """

    def __init__(
        self,
        *,
        role: str,
        model: str,
        batch_size: int = 8,
        device: str = "auto",
        dtype: str = "auto",
        trust_remote_code: bool = False,
    ):
        super().__init__()
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self._fn = _ScoreFn(role, model, batch_size, device, dtype, trust_remote_code)

    def expand(self, windows):
        return windows | "Score" >> beam.ParDo(self._fn)
