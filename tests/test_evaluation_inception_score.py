"""Inception Score from known logits, streaming splits, and ADM's 5,000-sample chunks."""

from __future__ import annotations

import numpy as np
import pytest

from walt_bench.evaluation.inception_score import InceptionScore, inception_score


def confident_logits(labels: np.ndarray, num_classes: int, margin: float = 60.0) -> np.ndarray:
    logits = np.zeros((len(labels), num_classes))
    logits[np.arange(len(labels)), labels] = margin
    return logits


def test_confident_and_evenly_spread_predictions_score_the_class_count():
    logits = confident_logits(np.arange(200) % 10, 10)
    mean, std = inception_score(logits)
    assert mean == pytest.approx(10.0, rel=1e-9)
    assert std == 0.0


def test_identical_predictions_score_one():
    logits = np.tile(np.random.default_rng(0).normal(size=(1, 7)), (50, 1))
    assert inception_score(logits)[0] == pytest.approx(1.0, abs=1e-12)


def test_matches_direct_formula_on_random_logits():
    logits = np.random.default_rng(1).normal(scale=3.0, size=(300, 13))
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    kl = (p * (np.log(p) - np.log(p.mean(0, keepdims=True)))).sum(1).mean()
    assert inception_score(logits)[0] == pytest.approx(np.exp(kl), rel=1e-10)


def test_streamed_batches_give_the_same_splits_as_one_pass():
    logits = np.random.default_rng(2).normal(size=(25, 5))
    streamed = InceptionScore(5, split_size=10)
    for chunk in np.array_split(logits, [3, 4, 17]):
        streamed.update(chunk)
    direct = [inception_score(logits[i : i + 10])[0] for i in (0, 10, 20)]
    np.testing.assert_allclose(streamed.scores(), direct, rtol=1e-12)


def test_adm_chunks_of_5000_average_per_chunk_scores():
    labels = np.concatenate([np.arange(5000) % 4, np.zeros(5000, dtype=int)])  # chunk IS 4, then 1
    mean, _ = inception_score(confident_logits(labels, 4), split_size=5000)
    assert mean == pytest.approx(2.5, rel=1e-9)
