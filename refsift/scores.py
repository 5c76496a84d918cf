"""Document-level scores, each a formula over mean per-token losses (nats) of the roles.

This is the one place the formulas live; `examples/*.parquet` stores their values.
- excess_loss = nll_model - nll_reference  (Rho-1 excess loss; RHO-LOSS reducible loss)
- learnability = (nll_model - nll_finetuned) / nll_model  (LoBaSS relative loss reduction)
- learning_percentage = (P0 - P1) / (P0 - Pn), P = exp(nll) of `model`, the first and the
  last checkpoint (Mekala et al. 2024); 0 when P0 = Pn
- novelty = nll_model - nll_finetuned  (mean of log p_ft - log p_model per token)
"""

from __future__ import annotations

import math

FIXED_ROLES = ("model", "reference", "finetuned")


def derive(nll: dict[str, float], checkpoints: list[str]) -> dict[str, float | None]:
    """Derived scores from mean NLLs keyed by role; None where a needed role is absent."""
    model, reference, finetuned = (nll.get(role) for role in FIXED_ROLES)
    scores: dict[str, float | None] = dict.fromkeys(("excess_loss", "learnability", "learning_percentage", "novelty"))
    if model is None:
        return scores
    if reference is not None:
        scores["excess_loss"] = model - reference
    if finetuned is not None:
        scores["novelty"] = model - finetuned
        scores["learnability"] = (model - finetuned) / model if model else None
    if checkpoints:
        p0, p1, pn = (math.exp(nll[r]) for r in ("model", checkpoints[0], checkpoints[-1]))
        scores["learning_percentage"] = 0.0 if p0 == pn else (p0 - p1) / (p0 - pn)
    return scores
