"""Choosing a mixture: RegMix's sampling within the epoch cap, the two regressors against
cases whose answer is known, and the proposal."""

import numpy as np
import pytest

from refsift.kernels import mixing

NATURAL = np.array([0.6, 0.3, 0.1])


def test_samples_are_distinct_mixtures_within_the_cap():
    cap = np.array([1.0, 0.8, 0.4])
    w = mixing.sample(NATURAL, 50, cap=cap, seed=0)
    assert w.shape == (50, 3) and np.allclose(w.sum(axis=1), 1) and (w >= 0).all()
    assert (w <= cap + 1e-12).all() and len({tuple(np.round(r, 6)) for r in w}) == 50
    assert np.array_equal(w, mixing.sample(NATURAL, 50, cap=cap, seed=0))  # seeded
    assert not np.array_equal(w, mixing.sample(NATURAL, 50, cap=cap, seed=1))


def test_sampling_spans_corners_and_the_natural_neighbourhood():
    w = mixing.sample(NATURAL, 200, cap=np.ones(3), seed=0)
    assert (w.max(axis=1) > 0.95).any()  # low concentrations reach near-corners
    assert (np.abs(w - NATURAL**0.5 / (NATURAL**0.5).sum()).sum(axis=1) < 0.1).any()  # high ones stay near the prior


def test_caps_follow_the_epochs_a_source_allows():
    assert np.allclose(mixing.caps(np.array([1000, 100_000]), 4000, 2.0), [0.5, 1.0])


def test_the_mixing_law_recovers_an_exponential_law():
    w = mixing.sample(NATURAL, 40, cap=np.ones(3), seed=3)
    true = 2.0 + 1.5 * np.exp(w @ np.array([-1.0, 0.5, 0.2]))
    law = mixing.MixingLaw().fit(w, true)
    assert np.allclose(law.predict(w), true, atol=0.01)
    assert mixing.loo_spearman(mixing.MixingLaw, w, true) > 0.99


def test_lightgbm_ranks_a_smooth_loss_surface():
    pytest.importorskip("lightgbm")
    w = mixing.sample(NATURAL, 40, cap=np.ones(3), seed=4)
    loss = 3.0 - 0.8 * w[:, 0] + 0.3 * w[:, 2]
    assert mixing.loo_spearman(mixing.regressors()["lightgbm"], w, loss) > 0.7


def test_the_proposal_moves_toward_the_lower_loss_and_stays_within_the_cap():
    w = mixing.sample(NATURAL, 40, cap=np.ones(3), seed=5)
    law = mixing.MixingLaw().fit(w, 2.0 + np.exp(-2.0 * w[:, 1]))  # more of source 1 is better
    cap = np.array([1.0, 0.7, 1.0])
    proposed = mixing.propose(law, NATURAL, cap=cap, seed=0, simulate=5000, top=50)
    assert proposed.sum() == pytest.approx(1) and (proposed <= cap + 1e-9).all()
    assert proposed[1] > 0.5 > NATURAL[1]
