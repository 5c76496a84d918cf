"""refsift's own numerics against the libraries that define them: ranks, Spearman and AUC
(scipy, scikit-learn), the percentile bootstrap (scipy.stats.bootstrap), k-means
(scikit-learn). refsift keeps its own small versions so that installing it pulls in neither
scipy nor scikit-learn; these tests say they compute the same thing (both libraries come with
the test extra)."""

import numpy as np
import pytest

from refsift.kernels import analysis, bootstrap, classifier

scipy_stats = pytest.importorskip("scipy.stats")
metrics = pytest.importorskip("sklearn.metrics")
cluster = pytest.importorskip("sklearn.cluster")


def tied(rng, n):
    return np.round(rng.normal(size=n), 1)  # rounded: many ties


@pytest.mark.parametrize("seed", range(5))
def test_ranks_spearman_and_auc_equal_scipy_and_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    a, b = tied(rng, 300), tied(rng, 300)
    b = b + 0.5 * a
    assert np.array_equal(classifier.ranks(a), scipy_stats.rankdata(a))
    assert classifier.spearman(a, b) == pytest.approx(scipy_stats.spearmanr(a, b).statistic, abs=1e-12)
    positive = b > 0.2
    assert classifier.auc(a, positive) == pytest.approx(metrics.roc_auc_score(positive, a), abs=1e-12)


def test_constant_or_one_class_inputs_are_nan_where_the_libraries_have_no_answer():
    assert np.isnan(classifier.spearman(np.ones(5), np.arange(5)))
    assert np.isnan(classifier.auc(np.arange(5), np.ones(5, dtype=bool)))


def test_the_mean_interval_is_scipys_percentile_bootstrap():
    values = np.random.default_rng(0).exponential(size=400)
    ours = bootstrap.mean_interval(values, seed=0)
    theirs = scipy_stats.bootstrap((values,), np.mean, confidence_level=bootstrap.LEVEL, method="percentile",
                                   n_resamples=20_000, random_state=1).confidence_interval  # fmt: skip
    width = theirs.high - theirs.low
    # different random draws (1,000 ours, 20,000 theirs): the ends agree to a few percent of the width
    assert abs(ours[0] - theirs.low) < 0.08 * width and abs(ours[1] - theirs.high) < 0.08 * width


def test_kmeans_finds_the_partition_scikit_learn_finds():
    rng = np.random.default_rng(0)
    directions = np.eye(8)[:4] * 5
    points = np.concatenate([d + rng.normal(scale=0.6, size=(40, 8)) for d in directions])
    points /= np.linalg.norm(points, axis=1, keepdims=True)  # refsift's k-means is spherical: unit rows
    ours = analysis.kmeans(points, 4, seed=0)
    theirs = cluster.KMeans(n_clusters=4, n_init=10, random_state=0).fit_predict(points)
    assert metrics.adjusted_rand_score(theirs, ours) == 1.0
    assert metrics.adjusted_rand_score(np.repeat(np.arange(4), 40), ours) == 1.0
