"""Reference-statistics files say what made them; `eval` refuses one made under other settings (exit 2, naming
the mismatch); ADM's reference batch is read from its npy headers without loading its images."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch

import walt_bench.data.loader
from walt_bench.cli import main
from walt_bench.evaluation.classifier import SyntheticVideoClassifier, save_classifier
from walt_bench.evaluation.statsfile import load_stats, read_stats, save_stats


def write_spec(tmp_path, **eval_fields) -> str:
    lines = ["tracking:", "  enabled: false", "run:", f"  out_dir: {tmp_path / 'runs'}"]
    lines += ["data:", "  num_frames: 5", "  height: 16", "  width: 16", "  num_workers: 0", "eval:"]
    lines += [f"  {k}: {v}" for k, v in eval_fields.items()]
    path = tmp_path / "spec.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def classifier(tmp_path, name: str, seed: int):
    torch.manual_seed(seed)
    return save_classifier(SyntheticVideoClassifier(num_classes=4, width=8).eval(), tmp_path / name, {})


class Clips(torch.utils.data.Dataset):
    """Stand-in for the data layer: 5-frame 16x16 clips on uint8 levels."""

    def __init__(self, n: int):
        rng = np.random.default_rng(0)
        self.videos = torch.from_numpy(rng.integers(0, 256, (n, 5, 3, 16, 16))).float() / 127.5 - 1

    def __len__(self):
        return len(self.videos)

    def __getitem__(self, key):
        return {"video": self.videos[key if isinstance(key, int) else key.index], "label": 0}


@pytest.fixture
def stats_file(tmp_path, monkeypatch):
    """`walt-bench eval stats` of 2 sets x 6 clips made with classifier A; returns (spec, stats, clf A)."""
    monkeypatch.setattr(walt_bench.data.loader, "build_dataset", lambda cfg, split=None: Clips(12))
    clf = classifier(tmp_path, "a.pt", 0)
    spec = write_spec(
        tmp_path, protocol="synthetic_fvd", classifier_weights=clf, cache_dir=tmp_path / "cache"
    )
    out = tmp_path / "ref.npz"
    counts = ["eval.num_samples=6", "eval.repeats=2"]
    assert main(["eval", "stats", "--spec", spec, "--out", str(out), *counts]) == 0
    np.savez(
        tmp_path / "samples.npz",
        videos=np.random.default_rng(1).integers(0, 256, (12, 5, 16, 16, 3), np.uint8),
    )
    return spec, out, clf, counts


def test_stats_file_records_protocol_extractor_weights_covariance_counts_and_data(stats_file):
    from walt_bench.hashing import file_sha256

    _, out, clf, _ = stats_file
    stats = read_stats(out, with_features=True)
    meta = stats.meta
    assert meta["protocol"] == "synthetic_fvd" and meta["extractor"] == "synthetic"
    assert meta["weights_sha256"] == file_sha256(clf) and meta["covariance"] == "sample"
    assert meta["num_samples"] == 6 and meta["sets"] == 2 and meta["reference_sets"] == "per_repeat"
    assert meta["dataset"] == "ucf101" and meta["split"] == "train" and len(meta["data_fingerprint"]) == 64
    assert stats.sets == 2 and stats.features[0].shape == (6, 32)


def test_eval_uses_a_matching_stats_file(stats_file, tmp_path):
    spec, out, _, counts = stats_file
    args = ["eval", "run", "--spec", spec, "--samples", str(tmp_path / "samples.npz"), *counts]
    assert main([*args, f"eval.reference_stats={out}"]) == 0


@pytest.mark.parametrize(
    "override, named",
    [
        (
            "eval.covariance=population",
            "covariance: the file has 'sample', this evaluation uses 'population'",
        ),
        ("eval.reference_samples=5", "num_samples: the file has 6, this evaluation uses 5"),
        ("eval.reference_sets=shared", "reference_sets: the file has 'per_repeat'"),
        ("data.num_frames=9", "frames: the file has 5, this evaluation uses 9"),
    ],
)
def test_eval_refuses_a_stats_file_made_under_other_settings(stats_file, tmp_path, capsys, override, named):
    spec, out, _, counts = stats_file
    if override.startswith("data.num_frames"):  # clips must fit the new geometry, so write 9-frame samples
        np.savez(tmp_path / "samples.npz", videos=np.zeros((12, 9, 16, 16, 3), np.uint8))
    args = ["eval", "run", "--spec", spec, "--samples", str(tmp_path / "samples.npz"), *counts]
    assert main([*args, f"eval.reference_stats={out}", override]) == 2
    err = capsys.readouterr().err
    assert "was made under other settings" in err and named in err


def test_eval_refuses_a_stats_file_made_with_other_weights(stats_file, tmp_path, capsys):
    spec, out, _, counts = stats_file
    other = classifier(tmp_path, "b.pt", 1)
    args = ["eval", "run", "--spec", spec, "--samples", str(tmp_path / "samples.npz"), *counts]
    assert main([*args, f"eval.reference_stats={out}", f"eval.classifier_weights={other}"]) == 2
    assert "weights_sha256: the file has" in capsys.readouterr().err


def test_a_single_foreign_reference_set_needs_reference_sets_shared(stats_file, tmp_path, capsys):
    spec, _, _, counts = stats_file
    save_stats(tmp_path / "pytorch_fid.npz", np.zeros(32), np.eye(32))  # no identity: pytorch-fid's layout
    args = ["eval", "run", "--spec", spec, "--samples", str(tmp_path / "samples.npz"), *counts]
    args += [f"eval.reference_stats={tmp_path / 'pytorch_fid.npz'}"]
    assert main(args) == 2
    assert "eval.reference_sets=shared" in capsys.readouterr().err
    assert main([*args, "eval.reference_sets=shared"]) == 0
    import json

    result = json.loads((tmp_path / "metrics.json").read_text())
    assert result["reference_sets"] == "shared" and result["reference"]["verified"] is False


def test_eval_fd_refuses_files_made_with_different_extractors(tmp_path, capsys):
    save_stats(
        tmp_path / "a.npz", np.zeros(4), np.eye(4), walt_bench_stats=2, extractor="i3d", weights_sha256="a"
    )
    save_stats(
        tmp_path / "b.npz", np.zeros(4), np.eye(4), walt_bench_stats=2, extractor="i3d", weights_sha256="b"
    )
    assert main(["eval", "fd", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]) == 2
    assert "weights_sha256: A 'a', B 'b'" in capsys.readouterr().err


def test_adm_reference_batch_statistics_are_read_without_loading_its_images(tmp_path):
    # arr_0's header claims ADM's 10,000 x 256 x 256 x 3 images (~2 GB) but only 16 bytes follow: any attempt to
    # load it fails, so reading mu/sigma must come from the headers alone.
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (10_000, 256, 256, 3)}
    )
    mu, sigma = np.arange(3.0), np.diag([1.0, 2.0, 3.0])
    with zipfile.ZipFile(tmp_path / "VIRTUAL_imagenet256_labeled.npz", "w") as zf:
        zf.writestr("arr_0.npy", header.getvalue() + bytes(16))
        for key, value in {"mu": mu, "sigma": sigma, "mu_s": mu, "sigma_s": sigma}.items():
            buf = io.BytesIO()
            np.save(buf, value)
            zf.writestr(f"{key}.npy", buf.getvalue())
    got_mu, got_sigma, meta = load_stats(tmp_path / "VIRTUAL_imagenet256_labeled.npz")
    np.testing.assert_array_equal(got_mu, mu)
    np.testing.assert_array_equal(got_sigma, sigma)
    assert meta == {}
