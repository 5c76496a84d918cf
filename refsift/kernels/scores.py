"""Scores, each a formula over per-token losses (nats) of the roles: per document over the
mean losses, per token (excess loss) over the tokens' losses.

This is the one place the formulas live; `examples/*.parquet` stores their values, the
catalog's `token_scores` view computes the per-token excess loss with `excess_loss_sql`.
- excess_loss = nll_model - nll_reference  (Rho-1 excess loss; RHO-LOSS reducible loss)
- learnability = (nll_model - nll_finetuned) / nll_model  (LoBaSS relative loss reduction, Zhou et al. 2023)
- learning_percentage = (P0 - P1) / (P0 - Pn), P = exp(nll) of `model`, the first and the
  last checkpoint (Mekala et al. 2024); 0 when P0 = Pn. It needs two checkpoints, or one
  checkpoint and `finetuned`, which then plays the last.
- novelty = nll_model - nll_finetuned  (mean of log p_ft - log p_model per token)
- predictive_strength: over a ladder of models with benchmark scores, the share of model
  pairs whose order by normalised loss on the document agrees with their order by
  benchmark (PreSelect, Shum et al. 2025; see `predictive_strength`).

The functions work on floats and on numpy arrays alike (one value per document).
"""

from __future__ import annotations

import numpy as np

FIXED_ROLES = ("model", "reference", "finetuned")
DERIVED = ("excess_loss", "learnability", "learning_percentage", "novelty", "predictive_strength")


def excess_loss(nll_model, nll_reference):
    """Rho-1's excess loss (RHO-LOSS's reducible loss): the loss under the model to be
    trained minus the loss under the reference. Floats or numpy arrays."""
    return nll_model - nll_reference


def excess_loss_sql(nll_model: str, nll_reference: str) -> str:
    """`excess_loss` as a SQL expression over two SQL expressions."""
    return f"{nll_model} - {nll_reference}"


def learning_roles(checkpoints: list[str], has_finetuned: bool) -> tuple[str, str] | None:
    """The (first, last) roles of learning percentage, or None when there is none to compute.

    Raises ValueError for a single checkpoint without `finetuned`: with P1 = Pn every
    document would score 1.0, a number that says nothing.
    """
    if len(checkpoints) >= 2:
        return checkpoints[0], checkpoints[-1]
    if len(checkpoints) == 1:
        if not has_finetuned:
            raise ValueError(
                "learning percentage needs two --checkpoint (first and last), or one --checkpoint and --finetuned "
                "as the last"
            )
        return checkpoints[0], "finetuned"
    return None


def predictive_strength(losses: list, benchmark: list[float]) -> np.ndarray:
    """PreSelect's predictive strength of each document, from the losses of a ladder of
    models on it (one array per model, normalised so that models with different
    tokenizers compare: bits per byte) and the models' benchmark scores (higher = better).

    As the authors' `train_fasttext.py`: every pair of models whose benchmark scores
    differ counts when the better model has the strictly lower loss; pairs with equal
    scores are skipped, and a tie in loss does not count. Where refsift differs: the count
    is divided by the number of pairs compared, so the score lies in [0, 1] and reads the
    same for any ladder (1 = the documents' losses order the models exactly as the
    benchmark does, the authors' positives); the ranking of documents is theirs. NaN where
    a model's loss is NaN.
    """
    table = np.stack([np.asarray(values, dtype=np.float64) for values in losses])
    scores = np.asarray(benchmark, dtype=np.float64)
    agree, pairs = np.zeros(table.shape[1]), 0
    for i in range(len(scores)):
        for j in range(i + 1, len(scores)):
            if scores[i] == scores[j]:
                continue
            better, worse = (i, j) if scores[i] > scores[j] else (j, i)
            agree += table[better] < table[worse]
            pairs += 1
    if not pairs:
        raise ValueError("a ladder needs models with different benchmark scores")
    strength = agree / pairs
    strength[np.isnan(table).any(axis=0)] = np.nan
    return strength


def derive(
    nll: dict, learning: tuple[str, str] | None = None, ladder: list[tuple[str, float]] = (), bpb: dict | None = None
) -> dict:
    """Derived scores from mean NLLs keyed by role; None where a needed role is absent,
    NaN where a formula is undefined (learnability when nll_model is 0). Predictive
    strength takes the ladder's (role, benchmark score) pairs and bits per byte by role."""
    model, reference, finetuned = (nll.get(role) for role in FIXED_ROLES)
    scores: dict = dict.fromkeys(DERIVED)
    if ladder:
        scores["predictive_strength"] = predictive_strength([bpb[role] for role, _ in ladder], [s for _, s in ladder])
    if model is None:
        return scores
    model = np.asarray(model, dtype=np.float64)
    if reference is not None:
        scores["excess_loss"] = excess_loss(model, reference)
    if finetuned is not None:
        scores["novelty"] = model - finetuned
        with np.errstate(divide="ignore", invalid="ignore"):
            scores["learnability"] = np.where(model != 0, (model - finetuned) / np.where(model != 0, model, 1), np.nan)
    if learning is not None:
        p0, p1, pn = (np.exp(np.asarray(nll[r], dtype=np.float64)) for r in ("model", *learning))
        with np.errstate(divide="ignore", invalid="ignore"):
            scores["learning_percentage"] = np.where(p0 == pn, 0.0, (p0 - p1) / np.where(p0 == pn, 1, p0 - pn))
    return scores
