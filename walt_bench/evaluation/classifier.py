"""A small video classifier for the synthetic dataset: the feature network behind FVD-synthetic / IS-synthetic.

No Kinetics-trained I3D exists offline, so the embedded default trains this 3D CNN on the synthetic train
split (``walt-bench eval train-classifier``, a few CPU minutes) and uses it exactly where FVD uses I3D:
pooled features for the Fréchet distance, class logits for the Inception Score. Numbers made with it are
labelled ``FVD-synthetic`` and ``IS-synthetic``; they rank models on the synthetic data only.

The file is a state dict; a JSON beside it (``<path>.json``) records the architecture, the data geometry and
the held-out accuracy.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class SyntheticVideoClassifier(nn.Module):
    """(B, T, 3, H, W) in [-1, 1] -> {"features": (B, 4 * width), "logits": (B, num_classes)}."""

    def __init__(self, num_classes: int, width: int = 32):
        super().__init__()
        self.num_classes, self.width = num_classes, width
        chans = [3, width, 2 * width, 4 * width]
        self.convs = nn.ModuleList(
            nn.Conv3d(chans[i], chans[i + 1], 3, stride=(1, 2, 2) if i == 0 else 2, padding=1)
            for i in range(3)
        )
        self.norms = nn.ModuleList(nn.GroupNorm(8 if c % 8 == 0 else 1, c) for c in chans[1:])
        self.head = nn.Linear(4 * width, num_classes)

    @property
    def feature_dim(self) -> int:
        return 4 * self.width

    def forward(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        x = video.float().permute(0, 2, 1, 3, 4)  # (B, 3, T, H, W)
        for conv, norm in zip(self.convs, self.norms):
            x = F.silu(norm(conv(x)))
        features = x.mean(dim=(2, 3, 4))  # (B, 4 * width)
        return {"features": features, "logits": self.head(features)}


class _EpochClips(torch.utils.data.Dataset):
    """Item ``i`` of ``epoch``: ``dataset[ItemKey(i, seed, epoch)]``, a fresh random clip window per epoch."""

    def __init__(self, dataset, seed: int, epoch: int):
        from walt_bench.data.base import ItemKey

        self.dataset, self.key = dataset, lambda i: ItemKey(i, seed, epoch)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[self.key(index)]


def _epoch_view(dataset, seed: int, epoch: int):
    try:
        from walt_bench.data.base import ClipDataset
    except ImportError:
        return dataset
    return _EpochClips(dataset, seed, epoch) if isinstance(dataset, ClipDataset) else dataset


def _batches(dataset, batch_size: int, generator: torch.Generator | None):
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=generator is not None, generator=generator, num_workers=0
    )
    for batch in loader:
        yield batch["video"], torch.as_tensor(batch["label"]).long()


@torch.no_grad()
def accuracy(model: nn.Module, dataset, batch_size: int = 32) -> float:
    model.eval()
    right = total = 0
    for video, label in _batches(dataset, batch_size, None):
        right += int((model(video)["logits"].argmax(-1) == label).sum())
        total += len(label)
    return right / max(total, 1)


def train_classifier(
    train_set,
    val_set,
    *,
    num_classes: int,
    epochs: int = 4,
    width: int = 32,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    progress: bool = True,
) -> tuple[SyntheticVideoClassifier, dict]:
    """Adam + cross-entropy over ``epochs`` passes of ``train_set``; returns the model and its metrics."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    model = SyntheticVideoClassifier(num_classes, width)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    steps = epochs * -(-len(train_set) // batch_size)
    start = time.time()
    with tqdm(total=steps, desc="train-classifier", unit="step", disable=not progress) as bar:
        for epoch in range(epochs):
            model.train()
            for video, label in _batches(_epoch_view(train_set, seed, epoch), batch_size, generator):
                loss = F.cross_entropy(model(video)["logits"], label)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                bar.set_postfix(loss=f"{loss.item():.3f}")
                bar.update()
    metrics = {
        "train_accuracy": accuracy(model, train_set),
        "val_accuracy": accuracy(model, val_set) if val_set is not None and len(val_set) else None,
        "final_loss": float(loss.item()),
        "epochs": epochs,
        "train_clips": len(train_set),
        "val_clips": len(val_set) if val_set is not None else 0,
        "seconds": round(time.time() - start, 1),
    }
    return model.eval(), metrics


def save_classifier(model: SyntheticVideoClassifier, path: str | Path, info: dict) -> Path:
    """State dict at ``path``; architecture, data geometry and accuracy at ``path + '.json'``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    meta = {"num_classes": model.num_classes, "width": model.width, "feature_dim": model.feature_dim, **info}
    Path(f"{path}.json").write_text(json.dumps(meta, indent=2))
    return path


def train_synthetic_classifier(spec, out=None, *, command: str = "walt-bench eval train-classifier") -> dict:
    """Train the classifier on the spec's train split (held-out accuracy on its test split, when there is one)
    and save it at ``out`` (default: ``synthetic_classifier_path(spec)``); returns its info (+ ``"path"``)."""
    import platform

    from walt_bench import __version__
    from walt_bench.data.loader import build_dataset
    from walt_bench.errors import DataError
    from walt_bench.evaluation.extractors import synthetic_classifier_path

    train_set = build_dataset(spec.data, split="train")
    try:
        val_set = build_dataset(spec.data, split="test")
    except DataError:  # no test split: report the training accuracy only
        val_set = None
    model, metrics = train_classifier(
        train_set,
        val_set,
        num_classes=spec.data.num_classes,
        epochs=spec.eval.classifier_epochs,
        width=spec.eval.classifier_width,
        batch_size=spec.eval.batch_size,
        seed=spec.run.seed,
    )
    path = Path(out) if out else synthetic_classifier_path(spec)
    info = {
        **metrics,
        "num_frames": spec.data.num_frames,
        "height": spec.data.height,
        "width_px": spec.data.width,
        "dataset_root": spec.data.root,
        "spec_hash": spec.hash,
        "command": command,
        "versions": {
            "walt_bench": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    save_classifier(model, path, info)
    return {**info, "path": str(path)}
