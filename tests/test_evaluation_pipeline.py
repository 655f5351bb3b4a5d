"""Protocols, streaming accumulation, the synthetic classifier and the `walt-bench eval` commands end to end."""

from __future__ import annotations

import hashlib
import json
import typing

import numpy as np
import pytest
import torch

import walt_bench.data.loader
from walt_bench.cli import main
from walt_bench.errors import DataError
from walt_bench.evaluation.classifier import SyntheticVideoClassifier, save_classifier, train_classifier
from walt_bench.evaluation.config import EvalConfig, ProtocolName
from walt_bench.evaluation.evaluate import MetricAccumulator, fd_between, prepare, quantize
from walt_bench.evaluation.extractors import Extractor, load_synthetic
from walt_bench.evaluation.frechet import feature_statistics, frechet_distance
from walt_bench.evaluation.protocols import PROTOCOLS, resolve
from walt_bench.evaluation.statsfile import load_stats, save_stats


class StandInClips(torch.utils.data.Dataset):
    """Clips whose class is the sign of their brightness (stands in for the data layer's datasets)."""

    def __init__(self, n: int, frames: int = 4, size: int = 8, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % 2
        sign = self.labels.float() * 2 - 1
        noise = torch.rand(n, frames, 3, size, size, generator=g) * 0.4 - 0.2
        self.videos = quantize((sign.view(n, 1, 1, 1, 1) * 0.5 + noise).clamp(-1, 1))  # on uint8 levels

    def __len__(self):
        return len(self.videos)

    def __getitem__(self, key):
        index = key if isinstance(key, int) else key.index
        return {
            "video": self.videos[index],
            "label": int(self.labels[index]),
            "is_image": False,
            "index": index,
        }


def identity_extractor(dim: int) -> Extractor:
    """Features = mean pixel per channel and frame; logits = the same (enough to test the plumbing)."""

    def run(video):
        feats = video.mean(dim=(3, 4)).flatten(1)[:, :dim]
        return {"features": feats, "logits": feats}

    return Extractor("standin", "test", "none", dim, dim, run)


@pytest.fixture
def classifier_file(tmp_path):
    torch.manual_seed(0)
    model = SyntheticVideoClassifier(num_classes=4, width=8).eval()
    return save_classifier(model, tmp_path / "clf.pt", {"val_accuracy": None})


def write_spec(tmp_path, frames: int = 5, size: int = 16, **eval_fields) -> str:
    """A spec whose data geometry (what the synthetic protocol checks clips against) is frames x size x size."""
    lines = ["tracking:", "  enabled: false", "run:", f"  out_dir: {tmp_path / 'runs'}"]
    lines += ["data:", f"  num_frames: {frames}", f"  height: {size}", f"  width: {size}", "eval:"]
    lines += [f"  {k}: {v}" for k, v in eval_fields.items()]
    path = tmp_path / "spec.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_protocol_names_in_the_spec_match_the_registry():
    assert set(typing.get_args(ProtocolName)) == set(PROTOCOLS)
    ucf = resolve(EvalConfig())
    assert (ucf.num_samples, ucf.repeats, ucf.reference_split) == (10_000, 4, "train")
    assert ucf.protocol.metric == "FVD" and ucf.protocol.is_extractor == "c3d"
    assert resolve(EvalConfig(protocol="imagenet_fid50k")).protocol.is_split == "chunk5000"


def test_k600_prepare_takes_16_frames_and_resizes_to_64():
    settings = resolve(EvalConfig(protocol="k600_fvd"))
    out = prepare(torch.zeros(2, 17, 3, 128, 128), settings)
    assert out.shape == (2, 16, 3, 64, 64)
    with pytest.raises(DataError, match="9 frames .*clips of 16 or 17 frames"):
        prepare(torch.zeros(1, 9, 3, 128, 128), settings)


def test_accumulator_splits_repeats_exactly_like_batch_statistics():
    settings = resolve(EvalConfig(protocol="synthetic_fvd"))
    ext = identity_extractor(6)
    acc = MetricAccumulator(ext, ext, settings, per_repeat=6, repeats=2)
    videos = torch.rand(14, 2, 3, 4, 4)
    for chunk in videos.split(5):
        acc.update(chunk)
    assert acc.seen == 12  # the two clips beyond 2 x 6 are ignored
    feats = videos.mean(dim=(3, 4)).flatten(1)[:, :6].double().numpy()
    for r in range(2):
        mu, sigma = feature_statistics(feats[6 * r : 6 * r + 6])
        np.testing.assert_allclose(acc.stats[r].mean, mu, rtol=1e-12)
        np.testing.assert_allclose(acc.stats[r].covariance(), sigma, rtol=1e-10, atol=1e-14)
    assert len(acc.scores[0].scores()) == 1


def test_classifier_learns_standin_classes_and_reloads(tmp_path):
    model, metrics = train_classifier(
        StandInClips(32),
        StandInClips(8, seed=1),
        num_classes=2,
        epochs=3,
        width=8,
        batch_size=8,
        progress=False,
    )
    assert metrics["val_accuracy"] == 1.0
    path = save_classifier(model, tmp_path / "c.pt", metrics)
    assert json.loads((tmp_path / "c.pt.json").read_text())["val_accuracy"] == 1.0
    extractor = load_synthetic(str(path))
    video = StandInClips(2).videos
    np.testing.assert_allclose(
        extractor(video)["logits"], model(video)["logits"].detach().double().numpy(), rtol=1e-5, atol=1e-6
    )


def test_eval_fd_command_prints_the_frechet_distance(tmp_path, capsys):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 8)), rng.normal(size=(50, 8)) + 1
    save_stats(tmp_path / "a.npz", *feature_statistics(a))
    save_stats(tmp_path / "b.npz", *feature_statistics(b))
    assert main(["eval", "fd", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]) == 0
    expected = frechet_distance(*feature_statistics(a), *feature_statistics(b))
    assert float(capsys.readouterr().out) == pytest.approx(expected, rel=1e-6)


def test_eval_fd_command_rejects_a_missing_file(tmp_path, capsys):
    assert main(["eval", "fd", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]) == 2
    assert "walt-bench eval stats" in capsys.readouterr().err


def test_eval_run_writes_labelled_synthetic_metrics(tmp_path, classifier_file):
    videos = np.random.default_rng(0).integers(0, 256, size=(12, 5, 16, 16, 3), dtype=np.uint8)
    (tmp_path / "samples").mkdir()
    np.savez(
        tmp_path / "samples" / "samples.npz", videos=videos, labels=np.zeros(12, np.int64), references=videos
    )
    spec = write_spec(tmp_path, protocol="synthetic_fvd", classifier_weights=classifier_file, batch_size=5)
    assert (
        main(
            [
                "eval",
                "--spec",
                spec,
                "--samples",
                str(tmp_path / "samples"),
                "eval.num_samples=6",
                "eval.repeats=2",
            ]
        )
        == 0
    )
    result = json.loads((tmp_path / "samples" / "metrics.json").read_text())
    assert "FVD" not in result and "IS" not in result  # never unqualified for the synthetic classifier
    assert result["metric"] == "FVD-synthetic" and len(result["FVD-synthetic"]["values"]) == 2
    assert result["IS-synthetic"]["mean"] >= 1.0
    assert result["reference"]["num_samples"] == 6
    assert (
        result["extractor"]["weights_sha256"]
        == hashlib.sha256(open(classifier_file, "rb").read()).hexdigest()
    )
    assert result["protocol"]["name"] == "synthetic_fvd" and len(result["spec_hash"]) == 12
    # repeat 0 holds exactly the clips of the reference set: distance ~ 0
    assert result["FVD-synthetic"]["values"][0] < 1e-6


def test_eval_stats_goes_through_the_data_layer_and_caches(tmp_path, classifier_file, monkeypatch, capsys):
    calls, reads = [], []

    class CountedClips(StandInClips):
        def __getitem__(self, key):
            reads.append(key)
            return super().__getitem__(key)

    def fake_build_dataset(cfg, split=None):
        calls.append(split)
        return CountedClips(10, frames=5, size=16)

    monkeypatch.setattr(walt_bench.data.loader, "build_dataset", fake_build_dataset)
    spec = write_spec(
        tmp_path,
        protocol="synthetic_fvd",
        classifier_weights=classifier_file,
        cache_dir=tmp_path / "cache",
        reference_samples=10,
        batch_size=4,
    )
    args = ["eval", "stats", "--spec", spec, "--out", str(tmp_path / "ref.npz"), "data.num_workers=0"]
    assert main(args) == 0
    assert main(args) == 0
    assert set(calls) == {"train"} and len(reads) == 10  # the second run reads no clip
    assert "cached" in capsys.readouterr().out.splitlines()[-1]
    mu, sigma, meta = load_stats(tmp_path / "ref.npz")
    feats = load_synthetic(classifier_file)(StandInClips(10, frames=5, size=16).videos)["features"]
    np.testing.assert_allclose(mu, feats.mean(0), rtol=1e-5, atol=1e-7)
    assert meta["num_samples"] == 10 and meta["protocol"] == "synthetic_fvd"


def test_adm_style_reference_batch_of_images_is_featurised(tmp_path, classifier_file):
    images = np.random.default_rng(1).integers(0, 256, size=(8, 16, 16, 3), dtype=np.uint8)
    np.savez(tmp_path / "ref_batch.npz", arr_0=images)
    np.savez(tmp_path / "sample_batch.npz", arr_0=images)
    spec = write_spec(
        tmp_path,
        frames=1,
        protocol="synthetic_fvd",
        classifier_weights=classifier_file,
        reference_stats=tmp_path / "ref_batch.npz",
        num_samples=8,
    )
    assert main(["eval", "run", "--spec", spec, "--samples", str(tmp_path / "sample_batch.npz")]) == 0
    result = json.loads((tmp_path / "metrics.json").read_text())
    assert result["reference"]["source"].endswith("ref_batch.npz:arr_0")
    assert result["FVD-synthetic"]["mean"] < 1e-6


def test_fd_between_two_clip_streams_equals_fd_of_their_feature_statistics():
    settings = resolve(EvalConfig(protocol="synthetic_fvd"))
    real, fake = quantize(torch.rand(20, 2, 3, 4, 4)), quantize(torch.rand(20, 2, 3, 4, 4) * 0.5)
    value = fd_between(real.split(6), fake.split(7), identity_extractor(6), settings, 20, progress=False)
    feats = [v.mean(dim=(3, 4)).flatten(1)[:, :6].double().numpy() for v in (real, fake)]
    expected = frechet_distance(*feature_statistics(feats[0]), *feature_statistics(feats[1]))
    assert value == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    "override",
    [
        "data.root=elsewhere",
        "eval.reference_split=test",
        "data.num_frames=9",
        "data.height=64",
        "data.width=64",
        "data.fold=2",
        "data.frame_stride=2",
        "data.clip_sampling=center",
        "eval.protocol=rfvd",
        "eval.reference_samples=7",
    ],
)
def test_reference_cache_key_changes_with_what_changes_the_statistics(tmp_path, override):
    from walt_bench.evaluation.reference import _cache_path
    from walt_bench.spec import load_spec

    spec_file = write_spec(tmp_path, protocol="synthetic_fvd")
    ext = identity_extractor(6)
    base = load_spec(spec_file)
    changed = load_spec(spec_file, [override])
    key = _cache_path(base, resolve(base.eval), ext, "list-a")
    assert _cache_path(changed, resolve(changed.eval), ext, "list-a") != key
    assert _cache_path(base, resolve(base.eval), ext, "list-a") == key  # and is stable otherwise


def test_reference_cache_key_changes_with_the_weights_and_the_file_list(tmp_path):
    from walt_bench.evaluation.reference import _cache_path
    from walt_bench.spec import load_spec

    spec = load_spec(write_spec(tmp_path, protocol="synthetic_fvd"))
    settings, a, b = resolve(spec.eval), identity_extractor(6), identity_extractor(6)
    a._sha256, b._sha256 = "0" * 64, "1" * 64
    assert _cache_path(spec, settings, a, "list-a") != _cache_path(spec, settings, b, "list-a")
    assert _cache_path(spec, settings, a, "list-a") != _cache_path(spec, settings, a, "list-b")


def test_stale_cache_is_not_reused_after_the_clip_stride_changes(tmp_path, classifier_file, monkeypatch):
    reads = []

    class CountedClips(StandInClips):
        def __getitem__(self, key):
            reads.append(key)
            return super().__getitem__(key)

    monkeypatch.setattr(
        walt_bench.data.loader,
        "build_dataset",
        lambda cfg, split=None: CountedClips(6, frames=5, size=16),
    )
    spec = write_spec(
        tmp_path, protocol="synthetic_fvd", classifier_weights=classifier_file, cache_dir=tmp_path / "cache"
    )
    args = ["eval", "stats", "--spec", spec, "--out", str(tmp_path / "ref.npz"), "data.num_workers=0"]
    args += ["eval.reference_samples=6"]
    assert main(args) == 0 and len(reads) == 6
    assert main([*args, "data.frame_stride=2"]) == 0
    assert len(reads) == 12  # recomputed, not the stride-1 statistics
