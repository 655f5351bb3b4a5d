"""Classification accuracy score on the synthetic dataset (CAS-synthetic; Ravuri & Vinyals 2019 call the
train-on-generated variant CAS, this is its classify-the-generated form): the synthetic-data classifier's top-1
accuracy on generated clips against the labels they were conditioned on. High only when the samples show their
class, which FVD-/IS-synthetic alone do not say. The same classifier's accuracy and IS-synthetic on held-out real
clips give the ceiling a model can reach; every ``synthetic_fvd`` result reports both.

    accuracy(predicted, labels)                                  # CAS of generated clips
    real_clip_scores(spec, extractor, settings, n)               # {"CAS-synthetic", "IS-synthetic", "N"} on real test clips
"""

from __future__ import annotations

import numpy as np
import torch


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of ``predicted`` class ids against ``labels`` (same length)."""
    if len(predicted) != len(labels) or len(labels) == 0:
        raise ValueError(f"accuracy of {len(predicted)} predictions against {len(labels)} labels")
    return float(np.mean(np.asarray(predicted) == np.asarray(labels)))


def sample_labels(location, count: int) -> np.ndarray | None:
    """The conditioning labels of the first ``count`` samples, or None when the file holds none."""
    from pathlib import Path

    path = Path(location)
    if path.is_dir() and (path / "shards").is_dir():
        from walt_bench.data.shards import ShardedRows

        return np.concatenate(list(ShardedRows(path / "shards", "labels").iter_blocks(4096, count))).astype(
            np.int64
        )
    path = path / "samples.npz" if path.is_dir() else path
    with np.load(path) as data:
        return data["labels"][:count].astype(np.int64) if "labels" in data.files else None


@torch.no_grad()
def real_clip_scores(spec, extractor, settings, count: int, split: str = "test") -> dict:
    """Accuracy and IS-synthetic of the classifier on the first ``count`` clips of ``split`` (centre clips)."""
    from walt_bench.data.loader import build_dataset
    from walt_bench.evaluation.evaluate import prepare
    from walt_bench.evaluation.inception_score import inception_score

    cfg = spec.data.model_copy(update={"clip_sampling": "center", "image_root": None, "image_ratio": 0.0})
    dataset = build_dataset(cfg, split=split)
    n = min(count, len(dataset))
    logits, labels = [], []
    for start in range(0, n, spec.eval.batch_size):
        items = [dataset[i] for i in range(start, min(start + spec.eval.batch_size, n))]
        video = torch.stack([it["video"] for it in items])
        logits.append(extractor(prepare(video, settings, f"the {split} clips"))["logits"])
        labels += [int(it["label"]) for it in items]
    logits_np = np.concatenate(logits)
    return {
        "CAS-synthetic": accuracy(logits_np.argmax(axis=1), np.asarray(labels)),
        "IS-synthetic": inception_score(logits_np)[0],
        "N": n,
        "split": split,
    }
