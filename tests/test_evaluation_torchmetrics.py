"""torchmetrics where it is the well-kept implementation: KID beside FID/FVD, and an FID check through
torchmetrics' FrechetInceptionDistance with our InceptionV3 as its feature network. Nothing pulls in
torchvision or torch-fidelity (environment.md: installing them replaces the CPU torch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from walt_bench.evaluation.kid import kernel_inception_distance

ROOT = Path(__file__).resolve().parents[1]


def unbiased_mmd2_cubic(x: np.ndarray, y: np.ndarray) -> float:
    """Bińkowski et al.'s unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, written out."""
    d, m = x.shape[1], len(x)
    kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
    off = ~np.eye(m, dtype=bool)
    return float(kxx[off].sum() / (m * (m - 1)) + kyy[off].sum() / (m * (m - 1)) - 2 * kxy.mean())


def test_kid_is_the_unbiased_cubic_kernel_mmd_when_the_subset_is_the_whole_set():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(40, 6)), rng.normal(size=(40, 6)) + 0.3
    kid = kernel_inception_distance(real, fake, subsets=3, subset_size=40)
    assert kid["value"] == pytest.approx(unbiased_mmd2_cubic(real, fake), rel=1e-9)
    assert kid["subset_std"] == pytest.approx(0.0, abs=1e-12)  # every subset is the whole (permuted) set


def test_kid_of_subsets_is_reproducible_and_near_zero_for_one_distribution():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    first = kernel_inception_distance(a, b, subsets=20, subset_size=100, seed=3)
    assert first == kernel_inception_distance(a, b, subsets=20, subset_size=100, seed=3)
    assert (
        abs(first["value"])
        < 0.05
        < kernel_inception_distance(a, b + 1.0, subsets=20, subset_size=100)["value"]
    )


class PoolThree(torch.nn.Module):
    """Our FID InceptionV3 as torchmetrics expects a feature module: uint8 (B, 3, H, W) -> pool_3 (B, 2048)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.num_features = net, 2048

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.float())["pool_3"].double()


def test_torchmetrics_fid_with_our_inception_as_feature_module_agrees_with_our_fid(tmp_path):
    from torchmetrics.image.fid import FrechetInceptionDistance

    from walt_bench.evaluation.extractors import load_inception
    from walt_bench.evaluation.frechet import feature_statistics, frechet_distance
    from walt_bench.evaluation.inception import FIDInceptionV3
    from walt_bench.evaluation.samples import to_pixels

    torch.manual_seed(0)
    net = FIDInceptionV3().eval()
    for module in net.modules():  # keep activations O(1) through the depth (default init: features ~1e-8)
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(net.state_dict(), tmp_path / "inception.pth")
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (4, 24, 24, 3), dtype=np.uint8)
    fake = np.clip(real.astype(int) + rng.integers(-40, 41, real.shape), 0, 255).astype(np.uint8)

    ours = load_inception(str(tmp_path / "inception.pth"))  # our path: uint8 -> [-1, 1] -> extractor
    stats = [feature_statistics(ours(to_pixels(x))["features"]) for x in (real, fake)]
    our_fid = frechet_distance(*stats[0], *stats[1])

    metric = FrechetInceptionDistance(feature=PoolThree(net), normalize=False)
    with torch.no_grad():
        for images, is_real in ((real, True), (fake, False)):
            metric.update(torch.from_numpy(images).permute(0, 3, 1, 2), real=is_real)
        theirs = float(metric.compute())
    assert our_fid > 0.1 and theirs == pytest.approx(our_fid, rel=1e-4)


def test_no_dependency_pulls_in_torchvision_or_torch_fidelity():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [
        d for extra in project["optional-dependencies"].values() for d in extra
    ]
    names = {
        d.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].strip().lower()
        for d in declared
    }
    assert "torchmetrics" in names and not names & {"torchvision", "torch-fidelity", "torch_fidelity"}
    code = (
        "import sys, walt_bench.tokenizer.metrics, walt_bench.evaluation.kid, torchmetrics.image.fid;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torchvision', 'torch_fidelity')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
