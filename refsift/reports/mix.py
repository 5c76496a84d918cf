"""A mixture search's fit in words: which regressor, and how well it ranks mixtures."""

from __future__ import annotations

from refsift.kernels.mixing import MIN_HELDOUT


def fit_said(fit: dict) -> str:
    """The fit in words: which regressor, and how well it ranks the mixtures."""
    loo = "undefined" if fit["loo_spearman"] is None else f"{fit['loo_spearman']:.2f}"
    text = f"{fit['regressor']}: leave-one-out Spearman {loo} on {fit['fitted_mixtures']} fitted mixtures; "
    if fit["heldout_spearman"] is None:
        return text + (
            f"not tested on held-out mixtures: {fit['heldout_mixtures']} held out, {MIN_HELDOUT} needed "
            "(raise --proxies or --heldout)"
        )
    return text + f"Spearman {fit['heldout_spearman']:.2f} on {fit['heldout_mixtures']} held-out mixtures it never saw"
