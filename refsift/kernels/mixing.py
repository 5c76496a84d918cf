"""Choosing a mixture from proxy runs (RegMix, Data Mixing Laws): sample candidate mixtures,
fit the target's loss as a function of the weights, and propose the mixture the fit likes
best. Plain numpy (LightGBM, when installed, is one of the two regressors).

Sampling follows RegMix's `synthesize_mixture.py`: Dirichlet draws around the natural
token distribution (tempered), with a concentration picked at random from a log-spaced
range (0.1 to 5: from near-corners to near-natural), rejected when a source would be
repeated more than the epoch cap allows, small weights zeroed and the rest rounded, and
duplicates dropped.

Two regressors are fitted and the one with the better leave-one-out Spearman kept:
- LightGBM, sized for tens of runs (RegMix's `min_data_in_leaf` of 20 leaves no split at
  that size): few leaves, a leaf needs 2 runs;
- the mixing law of Ye et al. (2024): loss = c + k exp(sum_j t_j w_j), fitted by a line
  search over c with least squares of log(loss - c) for the rest.
"""

from __future__ import annotations

import math

import numpy as np

from refsift.kernels.classifier import spearman

MIN_STRENGTH, MAX_STRENGTH, STRENGTHS = 0.1, 5.0, 15
TEMPERATURE = 0.5  # RegMix's: the prior is natural ** 0.5, renormalised

MIN_HELDOUT = 3  # held-out mixtures a Spearman of the fit needs to say anything


def caps(available: np.ndarray, tokens: int, max_epochs: float) -> np.ndarray:
    """The largest weight of each source that keeps it within `max_epochs` of its tokens."""
    return np.minimum(1.0, max_epochs * np.asarray(available, dtype=np.float64) / tokens)


def sample(natural: np.ndarray, n: int, *, cap: np.ndarray, seed: int, minimum: float = 1e-3,
           tries: int = 200) -> np.ndarray:  # fmt: skip
    """[n, sources] distinct mixtures within `cap`, RegMix's way (fewer when the cap leaves
    fewer distinct ones); drawn in batches (a Dirichlet draw is normalised Gamma draws)."""
    rng = np.random.default_rng(seed)
    prior = np.asarray(natural, dtype=np.float64) ** TEMPERATURE
    prior /= prior.sum()
    strengths = np.logspace(math.log10(MIN_STRENGTH), math.log10(MAX_STRENGTH), STRENGTHS)
    found: list[np.ndarray] = []
    seen: set[tuple] = set()
    batch = max(256, 4 * n)
    for _ in range(tries):
        concentration = prior[None, :] * strengths[rng.integers(STRENGTHS, size=batch)][:, None]
        w = rng.gamma(concentration)
        total = w.sum(axis=1, keepdims=True)
        w = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
        w = np.where(w < minimum, 0.0, w)
        total = w.sum(axis=1, keepdims=True)
        w = np.round(np.divide(w, total, out=np.zeros_like(w), where=total > 0) / minimum) * minimum
        total = w.sum(axis=1, keepdims=True)
        ok = (np.abs(total[:, 0] - 1) <= 10 * minimum) & (total[:, 0] > 0)
        w = w[ok] / total[ok]
        for row in w[(w <= cap + 1e-12).all(axis=1)]:
            key = tuple(np.round(row, 6))
            if key not in seen:
                seen.add(key)
                found.append(row)
                if len(found) == n:
                    return np.array(found)
    return np.array(found).reshape(-1, len(prior))


class MixingLaw:
    """loss = c + k exp(t . w), fitted by least squares of log(loss - c) over a grid of c."""

    def fit(self, weights: np.ndarray, losses: np.ndarray) -> MixingLaw:
        weights, losses = np.asarray(weights, np.float64), np.asarray(losses, np.float64)
        design = np.column_stack([np.ones(len(weights)), weights])
        best = None
        floor = losses.min()
        for c in floor - np.geomspace(1e-3, max(floor, 1e-2) + 1.0, 60)[::-1]:
            y = np.log(losses - c)
            coef, *_ = np.linalg.lstsq(design, y, rcond=None)
            error = float(((c + np.exp(design @ coef) - losses) ** 2).sum())
            if best is None or error < best[0]:
                best = (error, c, coef)
        _, self.c, self.coef = best
        return self

    def predict(self, weights: np.ndarray) -> np.ndarray:
        weights = np.asarray(weights, np.float64)
        return self.c + np.exp(np.column_stack([np.ones(len(weights)), weights]) @ self.coef)


class Boosted:
    """LightGBM regression sized for few runs."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, weights: np.ndarray, losses: np.ndarray) -> Boosted:
        import lightgbm

        self.model = lightgbm.LGBMRegressor(
            n_estimators=200, learning_rate=0.05, num_leaves=4, min_child_samples=2, min_data_in_bin=1,
            random_state=self.seed, verbose=-1,
        )  # fmt: skip
        self.model.fit(np.asarray(weights), np.asarray(losses))
        return self

    def predict(self, weights: np.ndarray) -> np.ndarray:
        return self.model.predict(np.asarray(weights))


def regressors(seed: int = 0) -> dict[str, type]:
    """The regressors that can be fitted here: the mixing law always, LightGBM when installed."""
    found = {"mixing_law": MixingLaw}
    try:
        import lightgbm  # noqa: F401

        found["lightgbm"] = lambda: Boosted(seed)
    except ImportError:
        pass
    return found


def loo_spearman(make, weights: np.ndarray, losses: np.ndarray) -> float:
    """Spearman of leave-one-out predictions with the observed losses."""
    predicted = np.empty(len(losses))
    for i in range(len(losses)):
        keep = np.arange(len(losses)) != i
        predicted[i] = make().fit(weights[keep], losses[keep]).predict(weights[i : i + 1])[0]
    return spearman(predicted, losses)


def propose(model, natural: np.ndarray, *, cap: np.ndarray, seed: int, simulate: int = 100_000,
            top: int = 100) -> np.ndarray:  # fmt: skip
    """RegMix's proposal: the mean of the `top` simulated mixtures the fit predicts lowest
    (a mean of mixtures within the cap is within it)."""
    candidates = sample(natural, simulate, cap=cap, seed=seed, tries=20)
    predicted = model.predict(candidates)
    best = candidates[np.argsort(predicted, kind="stable")[: min(top, len(candidates))]]
    mean = best.mean(axis=0)
    return mean / mean.sum()
