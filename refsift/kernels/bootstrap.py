"""How sure a finding is: percentile bootstrap over the units a figure is computed from
(samples of a novelty report, documents of an attribution or a run).

Every resampling is seeded, so a report shows the same interval each time it is built. An
interval says how much a figure moves when other samples of the same size are drawn; it does
not cover what the samples cannot show (another unlearning seed, another prompt set).
"""

from __future__ import annotations

import numpy as np

DRAWS = 1000
LEVEL = 0.9  # the middle 90% of the resampled figures


def draws(n: int, *, seed: int | list[int] = 0, times: int = DRAWS) -> np.ndarray:
    """[times, n] indices: each row a resample of n units with replacement."""
    return np.random.default_rng(seed).integers(0, n, size=(times, n)) if n else np.zeros((times, 0), np.int64)


def interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The middle `level` of resampled figures (NaN ones, from an empty resample, left out)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def ratio(numerators: np.ndarray, denominators: np.ndarray, index: np.ndarray) -> np.ndarray:
    """sum(numerators) / sum(denominators) over each resample's units (a token-weighted mean
    when the numerators are per-unit sums and the denominators token counts)."""
    numerators, denominators = np.asarray(numerators, np.float64), np.asarray(denominators, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return numerators[index].sum(axis=1) / denominators[index].sum(axis=1)


def mean_interval(values, *, seed: int = 0, level: float = LEVEL) -> tuple[float, float]:
    """Bootstrap interval of the mean of `values`."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float("nan"), float("nan")
    return interval(values[draws(len(values), seed=seed)].mean(axis=1), level)
