"""CAS-synthetic: the synthetic classifier's accuracy on generated clips against their conditioning labels."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from walt_bench.evaluation import evaluate
from walt_bench.evaluation.cas import accuracy, sample_labels


def test_accuracy_is_the_fraction_of_matching_labels():
    assert accuracy(np.array([1, 2, 3, 0]), np.array([1, 2, 0, 0])) == 0.75
    with pytest.raises(ValueError):
        accuracy(np.array([1]), np.array([1, 2]))


def test_generated_clips_are_scored_against_the_labels_they_were_conditioned_on(tmp_path, monkeypatch):
    labels = np.array([0, 1, 2, 3, 4, 5])
    np.savez(tmp_path / "samples.npz", videos=np.zeros((6, 2, 4, 4, 3), np.uint8), labels=labels)
    assert np.array_equal(sample_labels(tmp_path, 6), labels)
    acc = SimpleNamespace(seen=6, per_repeat=6, predictions=[np.array([0, 1, 2]), np.array([3, 9, 9])])
    monkeypatch.setattr(
        "walt_bench.evaluation.cas.real_clip_scores", lambda *a: {"CAS-synthetic": 0.9, "N": 6}
    )
    spec = SimpleNamespace(data=SimpleNamespace(num_classes=10))
    out = evaluate._classification_scores(spec, None, None, acc, tmp_path)
    assert out["CAS-synthetic"]["mean"] == pytest.approx(4 / 6) and out["CAS-synthetic"]["N"] == 6
    assert out["real"]["CAS-synthetic"] == 0.9
