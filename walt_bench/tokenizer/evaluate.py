"""``walt-bench tokenizer eval``: reconstruction quality on the eval split (PSNR, SSIM, rFVD; Table 3f).

``tokenizer.eval_clips`` clips of ``tokenizer.eval_split`` are encoded and decoded; PSNR and SSIM are averaged
over clips (mean and std; torchmetrics, ``walt_bench.tokenizer.metrics``). rFVD (reconstructions vs the real
clips, the ``rfvd`` protocol: 16 frames, I3D) is computed by ``walt_bench.evaluation.rfvd``, which owns the
protocol (geometry check, uint8 quantisation, extractor, statistics); with ``eval.protocol=synthetic_fvd``
the synthetic-data classifier is the extractor (``rFVD-synthetic``). When it cannot be computed (missing
weights, clips that do not fit the protocol) the JSON says why. A picture of originals over reconstructions
is saved beside it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from walt_bench.evaluation.rfvd import start_rfvd
from walt_bench.hashing import file_sha256
from walt_bench.tokenizer.build import load_tokenizer, resolve_checkpoint, tokenizer_hash
from walt_bench.tokenizer.metrics import psnr, ssim


def save_reconstruction_grid(
    real: torch.Tensor, recon: torch.Tensor, path: Path, clips: int = 2, frames: int = 8
):
    """PNG: for each of ``clips`` clips a row of original frames above a row of reconstructed ones."""
    from PIL import Image

    t = real.shape[1]
    idx = np.linspace(0, t - 1, min(frames, t)).round().astype(int)
    rows = []
    for i in range(min(clips, len(real))):
        for video in (real, recon):
            row = video[i, idx].clamp(-1, 1).add(1).mul(127.5).round().byte()  # (n, 3, H, W)
            rows.append(torch.cat(list(row), dim=2))  # (3, H, n*W)
    grid = torch.cat(rows, dim=1).permute(1, 2, 0).numpy()
    Image.fromarray(grid).save(path)
    return path


def evaluate_tokenizer(
    spec,
    *,
    checkpoint: str | None = None,
    split: str | None = None,
    clips: int | None = None,
    batch_size: int = 8,
    out_dir: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Reconstruct clips of the eval split; returns (and writes ``tokenizer_eval.json``) the metrics."""
    from torch.utils.data import DataLoader, Subset
    from tqdm.auto import tqdm

    from walt_bench.data.loader import build_dataset, collate
    from walt_bench.engine.distributed import resolve_device
    from walt_bench.engine.rundir import versions, write_json_atomic

    split = split or spec.tokenizer.eval_split
    clips = clips or spec.tokenizer.eval_clips
    ckpt = resolve_checkpoint(spec, checkpoint)
    device = resolve_device(spec.run.device)
    model = load_tokenizer(spec, str(ckpt)).to(device)
    data_cfg = spec.data.model_copy(update={"image_root": None, "image_ratio": 0.0})
    dataset = build_dataset(data_cfg, split=split)
    dataset = Subset(dataset, range(min(clips, len(dataset))))
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=spec.data.num_workers
    )
    rfvd, rfvd_note = start_rfvd(spec, device)
    out = Path(out_dir) if out_dir else ckpt.parent.parent
    out.mkdir(parents=True, exist_ok=True)
    psnrs, ssims, grid = [], [], None
    with tqdm(total=len(dataset), desc=f"reconstruct {split}", unit="clip", disable=not progress) as bar:
        for batch in loader:
            real = batch["video"].to(device)
            with torch.no_grad():
                recon = model.decode(model.encode(real)).clamp(-1, 1)
            psnrs.append(psnr(recon, real).cpu())
            ssims.append(ssim(recon, real).cpu())
            if rfvd is not None:
                rfvd.update(real, recon)
            if grid is None:
                grid = save_reconstruction_grid(real.cpu(), recon.cpu(), out / "reconstructions.png")
            bar.update(len(real))
    p, s = torch.cat(psnrs), torch.cat(ssims)
    result: dict[str, Any] = {
        "spec_hash": spec.hash,
        "tokenizer_hash": tokenizer_hash(spec),
        "checkpoint": str(ckpt),
        "checkpoint_sha256": file_sha256(ckpt),
        "split": split,
        "num_clips": len(p),
        "psnr": {"mean": float(p.mean()), "std": float(p.std(unbiased=False))},
        "ssim": {"mean": float(s.mean()), "std": float(s.std(unbiased=False))},
        "rfvd": None,
        "rfvd_note": rfvd_note,
        "reconstructions": str(grid) if grid else None,
        "command": " ".join(["walt-bench", *sys.argv[1:]]) if sys.argv else "walt-bench tokenizer eval",
        "versions": versions(),
    }
    if rfvd is not None:
        try:
            result["rfvd"] = rfvd.result()
        except Exception as exc:  # e.g. fewer clips than the covariance needs
            result["rfvd_note"] = f"{type(exc).__name__}: {exc}"
    write_json_atomic(out / "tokenizer_eval.json", result)
    result["path"] = str(out / "tokenizer_eval.json")
    return result
