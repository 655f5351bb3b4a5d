"""Inception Score, IS = exp(E_x KL(p(y|x) || p(y))) (Salimans et al. 2016), from logits, streaming.

Within one split, ``E_x KL = (1/N) sum_i sum_y p_iy log p_iy - sum_y pbar_y log pbar_y`` with
``pbar = (1/N) sum_i p_i``: both terms are running sums, so memory stays O(classes) whatever N is.

Splits: the UCF-101 protocol (MAGVIT; tfgan's ``classifier_score_from_logits``) scores each repeat of
10,000 clips and reports mean ± std over repeats; ADM's evaluator scores consecutive chunks of 5,000 samples and
reports their mean (its logits are ``pool_3 @ W`` without bias). Probabilities are softmax in float64.
"""

from __future__ import annotations

import numpy as np
import torch


class ScoreSplit:
    """Running sums for the IS of one split."""

    def __init__(self, num_classes: int):
        self.count = 0
        self.sum_p = np.zeros(num_classes, dtype=np.float64)
        self.sum_plogp = 0.0

    def update(self, logits) -> None:
        logp = torch.log_softmax(torch.as_tensor(np.asarray(logits), dtype=torch.float64), dim=-1)
        p = logp.exp()
        self.count += p.shape[0]
        self.sum_p += p.sum(0).numpy()
        self.sum_plogp += float((p * logp).sum())

    def score(self) -> float:
        pbar = self.sum_p / self.count
        cross = float(np.sum(pbar[pbar > 0] * np.log(pbar[pbar > 0])))
        return float(np.exp(self.sum_plogp / self.count - cross))


class InceptionScore:
    """Streams logits into splits of ``split_size`` consecutive samples; ``scores()`` gives one IS per split."""

    def __init__(self, num_classes: int, split_size: int):
        self.num_classes, self.split_size = num_classes, split_size
        self.splits: list[ScoreSplit] = []

    def update(self, logits) -> None:
        logits = np.asarray(logits)
        start = 0
        while start < len(logits):
            if not self.splits or self.splits[-1].count >= self.split_size:
                self.splits.append(ScoreSplit(self.num_classes))
            take = min(self.split_size - self.splits[-1].count, len(logits) - start)
            self.splits[-1].update(logits[start : start + take])
            start += take

    def scores(self) -> list[float]:
        return [s.score() for s in self.splits if s.count > 0]


def inception_score(logits, split_size: int | None = None) -> tuple[float, float]:
    """IS mean and (population) std over consecutive splits of ``split_size`` (None = one split)."""
    logits = np.asarray(logits)
    acc = InceptionScore(logits.shape[1], split_size or len(logits))
    acc.update(logits)
    scores = np.asarray(acc.scores())
    return float(scores.mean()), float(scores.std())
