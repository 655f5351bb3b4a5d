"""The protocol around the metrics: K600's TF1 intermediate resize, per-repeat reference sets, sample geometry
and quantisation, and the sample counts every result records."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from walt_bench.cli import main
from walt_bench.errors import DataError
from walt_bench.evaluation.classifier import SyntheticVideoClassifier, save_classifier
from walt_bench.evaluation.config import EvalConfig
from walt_bench.evaluation.evaluate import prepare, quantize
from walt_bench.evaluation.extractors import load_synthetic
from walt_bench.evaluation.frechet import feature_statistics, frechet_distance
from walt_bench.evaluation.protocols import resolve
from walt_bench.evaluation.samples import to_pixels


@pytest.fixture
def classifier_file(tmp_path):
    torch.manual_seed(0)
    model = SyntheticVideoClassifier(num_classes=4, width=8).eval()
    return save_classifier(model, tmp_path / "clf.pt", {"val_accuracy": None})


def write_spec(tmp_path, frames: int = 5, size: int = 16, **eval_fields) -> str:
    lines = ["tracking:", "  enabled: false", "run:", f"  out_dir: {tmp_path / 'runs'}"]
    lines += ["data:", f"  num_frames: {frames}", f"  height: {size}", f"  width: {size}", "eval:"]
    lines += [f"  {k}: {v}" for k, v in eval_fields.items()]
    path = tmp_path / "spec.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def uint8_clips(n: int, frames: int = 5, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, frames, size, size, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------ 1. K600 intermediate resize


def test_k600_resizes_128_to_64_with_tf1_resize_bilinear_not_an_antialiased_filter():
    # TF1 resize_bilinear at 128 -> 64: src = 2 * dst exactly, so output (i, j) is input (2i, 2j).
    clips = torch.from_numpy(uint8_clips(1, frames=17, size=128)).permute(0, 1, 4, 2, 3)
    video = clips.float() / 127.5 - 1.0
    out = prepare(video, resolve(EvalConfig(protocol="k600_fvd")))
    assert out.shape == (1, 16, 3, 64, 64)
    torch.testing.assert_close(out, video[:, :16, :, ::2, ::2], rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------ 2. per-repeat reference sets


def test_ucf101_protocol_defaults_to_one_reference_set_per_repeat():
    settings = resolve(EvalConfig())
    assert settings.reference_sets == "per_repeat" and settings.reference_repeats == 4
    assert resolve(EvalConfig(reference_sets="shared")).reference_repeats == 1


def _features(classifier, clips: np.ndarray) -> np.ndarray:
    return load_synthetic(str(classifier))(to_pixels(clips))["features"]


@pytest.mark.parametrize("sets", ["per_repeat", "shared"])
def test_each_repeat_is_compared_with_its_own_real_set_unless_shared(tmp_path, classifier_file, sets):
    generated, real = uint8_clips(12, seed=1), uint8_clips(12, seed=2)
    np.savez(tmp_path / "samples.npz", videos=generated, references=real)
    spec = write_spec(tmp_path, protocol="synthetic_fvd", classifier_weights=classifier_file, batch_size=5)
    args = ["eval", "run", "--spec", spec, "--samples", str(tmp_path / "samples.npz"), "eval.num_samples=6"]
    assert main([*args, "eval.repeats=2", f"eval.reference_sets={sets}", "eval.kid=false"]) == 0
    result = json.loads((tmp_path / "metrics.json").read_text())
    assert result["reference_sets"] == sets and result["reference"]["sets"] == (
        2 if sets == "per_repeat" else 1
    )
    fake, true = _features(classifier_file, generated), _features(classifier_file, real)
    for r in range(2):
        ref = true[6 * r : 6 * r + 6] if sets == "per_repeat" else true[:6]
        expected = frechet_distance(*feature_statistics(fake[6 * r : 6 * r + 6]), *feature_statistics(ref))
        assert result["FVD-synthetic"]["values"][r] == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------------------- 5. samples fit the protocol


@pytest.mark.parametrize(
    "shape, problem",
    [
        ((3, 128, 128, 3), "3 frames"),
        ((7, 300, 300, 3), "7 frames .*300x300 frames"),
        ((300, 128, 128, 3), "300"),
    ],
)
def test_eval_rejects_clips_that_do_not_fit_the_ucf101_protocol(tmp_path, shape, problem, capsys):
    np.savez(tmp_path / "s.npz", videos=np.zeros((2, *shape), np.uint8))
    spec = write_spec(tmp_path, frames=17, size=128, protocol="ucf101_fvd")  # no weights needed to refuse
    assert main(["eval", "run", "--spec", spec, "--samples", str(tmp_path / "s.npz")]) == 2
    err = capsys.readouterr().err
    assert "do not fit protocol ucf101_fvd" in err
    assert re.search(problem, err)


def test_eval_rejects_clips_of_another_geometry_than_the_synthetic_data(tmp_path, classifier_file, capsys):
    np.savez(tmp_path / "s.npz", videos=uint8_clips(4, frames=3))
    spec = write_spec(tmp_path, protocol="synthetic_fvd", classifier_weights=classifier_file)
    assert main(["eval", "run", "--spec", spec, "--samples", str(tmp_path / "s.npz")]) == 2
    assert "3 frames (it evaluates 5 frame(s): clips of 5 or 6 frames)" in capsys.readouterr().err


def test_17_frame_clips_fit_a_16_frame_protocol_and_images_fit_imagenet():
    from walt_bench.evaluation.protocols import check_clips

    check_clips(17, 128, 128, resolve(EvalConfig()))
    check_clips(1, 256, 256, resolve(EvalConfig(protocol="imagenet_fid50k")))
    with pytest.raises(DataError, match="2 frames"):
        check_clips(2, 256, 256, resolve(EvalConfig(protocol="imagenet_fid50k")))


def test_real_clips_between_uint8_levels_are_quantised_like_generated_ones():
    settings = resolve(EvalConfig(protocol="synthetic_fvd"))
    stored = uint8_clips(2)
    from_file = to_pixels(stored)  # how generated samples arrive
    off_grid = from_file + (torch.rand_like(from_file) - 0.5) / 300  # a resized real clip: between levels
    off_grid = off_grid.clamp(-1, 1)
    torch.testing.assert_close(prepare(off_grid, settings), prepare(from_file, settings), rtol=0, atol=0)
    torch.testing.assert_close(quantize(from_file), from_file, rtol=0, atol=1e-6)  # samples are unchanged


@pytest.mark.parametrize("scale", [255.0, 2.0])
def test_pixels_outside_minus_one_one_are_an_error_not_clipped(scale):
    with pytest.raises(DataError, match=r"pixels must be in \[-1, 1\]"):
        prepare(torch.rand(1, 5, 3, 16, 16) * scale, resolve(EvalConfig(protocol="synthetic_fvd")))


# ------------------------------------------------------------------------------------- 8. N is recorded


def test_every_frechet_and_kid_result_records_its_sample_counts(tmp_path, classifier_file):
    np.savez(tmp_path / "samples.npz", videos=uint8_clips(8, seed=1), references=uint8_clips(8, seed=2))
    spec = write_spec(tmp_path, protocol="synthetic_fvd", classifier_weights=classifier_file)
    assert (
        main(
            ["eval", "run", "--spec", spec, "--samples", str(tmp_path / "samples.npz"), "eval.num_samples=8"]
        )
        == 0
    )
    result = json.loads((tmp_path / "metrics.json").read_text())
    assert result["FVD-synthetic"]["N"] == {"generated": 8, "reference": 8}
    assert result["KID"]["N"] == {"generated": 8, "reference": 8} and result["KID"]["subset_size"] == 8
    assert result["IS-synthetic"]["N"] == 8
