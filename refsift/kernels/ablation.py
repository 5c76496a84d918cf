"""Does one arm train a better model than another? Paired comparisons of proxy models, and
the token budgets that make arms comparable. Plain numpy.

Arms share their seeds: seed s starts every arm's proxy from the same initialisation (and,
where arms share data, the same order), so arm a's loss on a document under seed s is
compared with arm b's on the same document under the same seed. The difference of two arms
is the mean over seeds and documents of a - b (in nats per token; lower is better); its
interval resamples seeds and documents together (a two-level percentile bootstrap), so it
widens both when seeds disagree and when documents do. With one seed the seeds cannot be
resampled, and the interval says only how much the documents move the figure.
"""

from __future__ import annotations

import math

import numpy as np

from refsift.kernels import bootstrap

BETTER, WORSE, SAME = "better", "worse", "no detectable difference"


def paired(a: np.ndarray, b: np.ndarray, *, level: float = bootstrap.LEVEL, seed: int = 0,
           draws: int = bootstrap.DRAWS) -> dict:  # fmt: skip
    """Arm a against arm b from their losses, [seeds, documents] each (the same seeds and
    documents in the same order): `difference` (mean of a - b), its `low`..`high` interval,
    `wins` (seeds where a's mean loss is lower), `seeds`, `verdict` (better: the interval is
    below zero; worse: above; else no detectable difference) and `detectable`, the half-width
    of the interval: a smaller true difference these seeds and documents would not show."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or not a.size:
        raise ValueError(f"paired losses need the same [seeds, documents] shape, got {a.shape} and {b.shape}")
    d = a - b
    n_seeds, n_docs = d.shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, n_seeds, size=(draws, n_seeds)) if n_seeds > 1 else np.zeros((draws, 1), np.int64)
    docs = rng.integers(0, n_docs, size=(draws, n_docs))
    # mean over the resampled seeds of the mean over the resampled documents
    per_seed_docs = np.stack([d[:, docs[i]].mean(axis=1) for i in range(draws)])  # [draws, seeds]
    resampled = np.take_along_axis(per_seed_docs, seeds, axis=1).mean(axis=1)
    low, high = bootstrap.interval(resampled, level)
    return {
        "difference": float(d.mean()),
        "low": low,
        "high": high,
        "wins": int((a.mean(axis=1) < b.mean(axis=1)).sum()),
        "seeds": int(n_seeds),
        "verdict": verdict(low, high),
        "detectable": (high - low) / 2 if math.isfinite(low) else math.nan,
    }


def verdict(low: float, high: float) -> str:
    if high < 0:
        return BETTER
    if low > 0:
        return WORSE
    return SAME


def natural(available: dict[str, int]) -> dict[str, float]:
    """Shares proportional to each source's tokens."""
    total = sum(available.values())
    return {s: n / total for s, n in available.items()}


def uniform(available: dict[str, int]) -> dict[str, float]:
    return {s: 1 / len(available) for s in available}


def epochs(shares: dict[str, float], available: dict[str, int], tokens: int) -> dict[str, float]:
    """How many times each source's tokens are seen when `tokens` are split by `shares`."""
    return {s: shares.get(s, 0.0) * tokens / available[s] if available[s] else math.inf for s in available}
