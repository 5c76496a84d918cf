"""Document-level scores, each a formula over mean per-token losses (nats) of the roles.

This is the one place the formulas live; `examples/*.parquet` stores their values.
- excess_loss = nll_model - nll_reference  (Rho-1 excess loss; RHO-LOSS reducible loss)
- learnability = (nll_model - nll_finetuned) / nll_model  (LoBaSS relative loss reduction)
- learning_percentage = (P0 - P1) / (P0 - Pn), P = exp(nll) of `model`, the first and the
  last checkpoint (Mekala et al. 2024); 0 when P0 = Pn. It needs two checkpoints, or one
  checkpoint and `finetuned`, which then plays the last.
- novelty = nll_model - nll_finetuned  (mean of log p_ft - log p_model per token)

The functions work on floats and on numpy arrays alike (one value per document).
"""

from __future__ import annotations

import numpy as np

FIXED_ROLES = ("model", "reference", "finetuned")
DERIVED = ("excess_loss", "learnability", "learning_percentage", "novelty")


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


def derive(nll: dict, learning: tuple[str, str] | None = None) -> dict:
    """Derived scores from mean NLLs keyed by role; None where a needed role is absent,
    NaN where a formula is undefined (learnability when nll_model is 0)."""
    model, reference, finetuned = (nll.get(role) for role in FIXED_ROLES)
    scores: dict = dict.fromkeys(DERIVED)
    if model is None:
        return scores
    model = np.asarray(model, dtype=np.float64)
    if reference is not None:
        scores["excess_loss"] = model - reference
    if finetuned is not None:
        scores["novelty"] = model - finetuned
        with np.errstate(divide="ignore", invalid="ignore"):
            scores["learnability"] = np.where(model != 0, (model - finetuned) / np.where(model != 0, model, 1), np.nan)
    if learning is not None:
        p0, p1, pn = (np.exp(np.asarray(nll[r], dtype=np.float64)) for r in ("model", *learning))
        with np.errstate(divide="ignore", invalid="ignore"):
            scores["learning_percentage"] = np.where(p0 == pn, 0.0, (p0 - p1) / np.where(p0 == pn, 1, p0 - pn))
    return scores
