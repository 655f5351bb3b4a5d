"""Fréchet distance: analytic cases, an independent float64 reference, rank deficiency, streaming statistics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from walt_bench.errors import DataError
from walt_bench.evaluation.frechet import RunningStats, feature_statistics, frechet_distance
from walt_bench.evaluation.statsfile import load_stats, save_stats


def reference_fd(mu1, s1, mu2, s2) -> float:
    """Independent route: tr((S1 S2)^1/2) from the eigenvalues of S2^1/2 S1 S2^1/2 via scipy.linalg.eigh."""
    w2, v2 = linalg.eigh(s2)
    root2 = (v2 * np.sqrt(np.clip(w2, 0, None))) @ v2.T
    eig = linalg.eigh(root2 @ s1 @ root2, eigvals_only=True)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(eig, 0, None)).sum())


def test_unit_mean_shift_in_2048_dimensions_is_exactly_2048():
    d = 2048
    assert frechet_distance(np.zeros(d), np.eye(d), np.ones(d), np.eye(d)) == 2048.0


def test_diagonal_covariances_match_closed_form():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.1, 3.0, 64), rng.uniform(0.1, 3.0, 64)
    mu_a, mu_b = rng.normal(size=64), rng.normal(size=64)
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu_a, np.diag(a), mu_b, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_general_path_on_rotated_diagonal_covariances_matches_closed_form():
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.normal(size=(128, 128)))  # a shared rotation keeps S1, S2 commuting, not diagonal
    a, b = rng.uniform(0.1, 3.0, 128), rng.uniform(0.1, 3.0, 128)
    expected = 2.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    mu2 = np.zeros(128)
    mu2[:2] = 1.0
    value = frechet_distance(np.zeros(128), (q * a) @ q.T, mu2, (q * b) @ q.T)
    assert value == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n", [500, 40])  # 40 < d = 64: rank-deficient covariances
def test_agrees_with_independent_reference_on_random_features(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 64)) @ rng.normal(size=(64, 64))
    y = rng.normal(size=(n, 64)) @ rng.normal(size=(64, 64)) + 0.5
    mu1, s1 = feature_statistics(x)
    mu2, s2 = feature_statistics(y)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference_fd(mu1, s1, mu2, s2), rel=1e-7)


def test_identical_rank_deficient_sets_give_zero():
    x = np.random.default_rng(3).normal(size=(20, 128)) * 10
    mu, sigma = feature_statistics(x)
    value = frechet_distance(mu, sigma, mu, sigma)
    assert 0.0 <= value < 1e-6 * np.trace(sigma)


def test_sample_covariance_divides_by_n_minus_one_and_population_by_n():
    x = np.random.default_rng(4).normal(size=(10, 3))
    _, sample = feature_statistics(x)
    _, population = feature_statistics(x, covariance="population")
    centred = x - x.mean(0)
    np.testing.assert_allclose(sample, centred.T @ centred / 9)
    np.testing.assert_allclose(population, centred.T @ centred / 10)


def test_streaming_statistics_equal_batch_statistics():
    x = np.random.default_rng(5).normal(loc=100.0, size=(103, 16))  # large mean: cancellation-prone
    stats = RunningStats(16)
    for chunk in np.array_split(x, [1, 8, 50, 51]):
        stats.update(chunk)
    mu, sigma = feature_statistics(x)
    np.testing.assert_allclose(stats.mean, mu, rtol=1e-13)
    np.testing.assert_allclose(stats.covariance(), sigma, rtol=1e-10, atol=1e-12)
    assert stats.count == 103


def test_stats_file_round_trip_keeps_pytorch_fid_keys(tmp_path):
    mu, sigma = np.arange(3.0), np.eye(3)
    path = save_stats(tmp_path / "s.npz", mu, sigma, num_samples=7, extractor="i3d")
    with np.load(path) as data:
        assert {"mu", "sigma"} <= set(data.files)
    mu2, sigma2, meta = load_stats(path)
    np.testing.assert_array_equal(mu2, mu)
    np.testing.assert_array_equal(sigma2, sigma)
    assert meta == {"num_samples": 7, "extractor": "i3d"}


def test_stats_file_without_mu_sigma_is_a_clear_error(tmp_path):
    np.savez(tmp_path / "images.npz", arr_0=np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(DataError, match="'mu' and 'sigma'"):
        load_stats(tmp_path / "images.npz")


def test_mismatched_feature_sizes_are_rejected():
    with pytest.raises(DataError, match="same extractor"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def pytorch_fid_formula(mu1, s1, mu2, s2) -> float:
    """pytorch-fid's route (scipy.linalg.sqrtm of S1 S2, real part), valid on well-conditioned covariances."""
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = covmean[0] if isinstance(covmean, tuple) else covmean
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(np.real(covmean)))


def test_agrees_with_pytorch_fid_sqrtm_formula_on_well_conditioned_statistics():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(800, 32)) @ rng.normal(size=(32, 32))
    y = rng.normal(size=(800, 32)) * rng.uniform(0.5, 2.0, 32) + 0.3
    mu1, s1 = feature_statistics(x)
    mu2, s2 = feature_statistics(y)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
        pytorch_fid_formula(mu1, s1, mu2, s2), rel=1e-8
    )


def test_one_diagonal_and_one_full_covariance_take_the_general_route():
    rng = np.random.default_rng(8)
    a = rng.normal(size=(100, 16))
    mu1, s1 = feature_statistics(a)
    s2 = np.diag(rng.uniform(0.5, 2.0, 16))
    mu2 = np.zeros(16)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference_fd(mu1, s1, mu2, s2), rel=1e-10)


def test_nearly_diagonal_covariances_are_not_treated_as_diagonal():
    s1, s2 = np.diag([1.0, 4.0]), np.diag([4.0, 1.0])
    s1[0, 1] = s1[1, 0] = 0.9  # strongly correlated: the closed form sum sqrt(a_i b_i) would be wrong
    expected = reference_fd(np.zeros(2), s1, np.zeros(2), s2)
    closed_form = np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.diag(s1) * np.diag(s2)).sum()
    value = frechet_distance(np.zeros(2), s1, np.zeros(2), s2)
    assert value == pytest.approx(expected, rel=1e-12) and abs(value - closed_form) > 1e-3


def test_diagonal_shortcut_agrees_with_general_route_on_round_off_negative_variances():
    # np.cov of a constant feature can give -1e-17; both variances negative must not make a positive product.
    a = np.array([2.0, -1e-3, 1.0])
    b = np.array([0.5, -1e-3, 3.0])
    q, _ = np.linalg.qr(np.random.default_rng(9).normal(size=(3, 3)))
    diagonal = frechet_distance(np.zeros(3), np.diag(a), np.zeros(3), np.diag(b))
    rotated = frechet_distance(np.zeros(3), (q * a) @ q.T, np.zeros(3), (q * b) @ q.T)  # general route
    assert diagonal == pytest.approx(rotated, rel=1e-9)


def test_non_finite_statistics_are_a_data_error():
    sigma = np.eye(3)
    sigma[0, 0] = np.inf
    with pytest.raises(DataError, match="NaN or infinite"):
        frechet_distance(np.zeros(3), sigma, np.zeros(3), np.eye(3))


def test_sample_bias_measurement_shrinks_with_n_and_brackets_the_true_distance():
    from walt_bench.evaluation.sample_bias import measure

    run = measure(dim=8, counts=[200, 3000], seed=0)
    same, shifted = run["fd"]["same"], run["fd"]["shifted"]
    assert same[3000] < same[200] and shifted[3000] < shifted[200]  # the upward bias shrinks with N
    assert abs(shifted[3000] - run["true"]["shifted"]) < abs(shifted[200] - run["true"]["shifted"])


def test_pooled_running_stats_equal_the_statistics_of_all_rows():
    rng = np.random.default_rng(5)
    parts = [rng.normal(size=(n, 4)) for n in (3, 7, 5)]
    stats = []
    for rows in parts:
        s = RunningStats(4)
        s.update(rows)
        stats.append(s)
    pooled = RunningStats.pooled(stats)
    mu, sigma = feature_statistics(np.concatenate(parts))
    np.testing.assert_allclose(pooled.mean, mu, rtol=1e-12)
    np.testing.assert_allclose(pooled.covariance(), sigma, rtol=1e-10, atol=1e-14)
