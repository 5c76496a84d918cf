"""The paired comparison of arms, against cases computed by hand."""

import math

import numpy as np
import pytest

from refsift.kernels import ablation


def test_the_same_arm_twice_shows_no_difference():
    a = np.random.default_rng(0).normal(3, 0.5, size=(5, 40))
    c = ablation.paired(a, a.copy())
    assert (c["difference"], c["low"], c["high"], c["wins"], c["seeds"]) == (0.0, 0.0, 0.0, 0, 5)
    assert c["verdict"] == ablation.SAME and c["detectable"] == 0.0


def test_a_constant_gap_is_that_gap_with_no_spread():
    b = np.random.default_rng(1).normal(3, 0.5, size=(4, 30))
    c = ablation.paired(b - 0.25, b)
    assert c["difference"] == pytest.approx(-0.25) and c["low"] == pytest.approx(-0.25)
    assert c["high"] == pytest.approx(-0.25) and c["wins"] == 4 and c["verdict"] == ablation.BETTER
    assert ablation.paired(b, b - 0.25)["verdict"] == ablation.WORSE


def test_hand_computed_difference_wins_and_interval_bounds():
    # two seeds, three documents; a - b = [[-1, -2, 0], [1, 1, 1]]: mean -0, seed means -1 and +1
    b = np.array([[3.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    a = b + np.array([[-1.0, -2.0, 0.0], [1.0, 1.0, 1.0]])
    c = ablation.paired(a, b)
    assert c["difference"] == pytest.approx(0.0) and c["wins"] == 1 and c["seeds"] == 2
    # every resample's mean lies between the most negative and most positive seed's mean over documents
    assert -2.0 <= c["low"] <= 0.0 <= c["high"] <= 1.0 and c["verdict"] == ablation.SAME
    assert c["detectable"] == pytest.approx((c["high"] - c["low"]) / 2)


def test_seeds_that_disagree_widen_the_interval_past_zero():
    rng = np.random.default_rng(2)
    b = rng.normal(3, 0.1, size=(6, 50))
    seed_effect = np.array([0.3, -0.3, 0.3, -0.3, 0.3, -0.2])[:, None]  # half the seeds each way
    c = ablation.paired(b + seed_effect, b)
    assert c["low"] < 0 < c["high"] and c["verdict"] == ablation.SAME and c["wins"] == 3


def test_one_seed_resamples_documents_only():
    b = np.random.default_rng(3).normal(3, 1.0, size=(1, 200))
    a = b - 0.05 + np.random.default_rng(4).normal(0, 0.2, size=(1, 200))
    c = ablation.paired(a, b)
    half = 1.645 * (a - b).std(ddof=1) / math.sqrt(200)  # the normal approximation of the same interval
    assert c["high"] - c["low"] == pytest.approx(2 * half, rel=0.2)


def test_shapes_must_match():
    with pytest.raises(ValueError, match="same"):
        ablation.paired(np.zeros((2, 3)), np.zeros((3, 2)))


def test_shares_and_epochs():
    available = {"code": 1000, "prose": 3000}
    assert ablation.natural(available) == {"code": 0.25, "prose": 0.75}
    assert ablation.uniform(available) == {"code": 0.5, "prose": 0.5}
    assert ablation.epochs({"code": 0.5, "prose": 0.5}, available, 4000) == {"code": 2.0, "prose": 2000 / 3000}
