"""Bad input to `walt-bench eval ...` ends with exit 2 and a message that names the problem, never a traceback."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from walt_bench.cli import main
from walt_bench.errors import WeightsError
from walt_bench.evaluation.classifier import SyntheticVideoClassifier, save_classifier
from walt_bench.evaluation.config import EvalConfig
from walt_bench.evaluation.evaluate import MetricAccumulator
from walt_bench.evaluation.extractors import Extractor
from walt_bench.evaluation.protocols import resolve
from walt_bench.evaluation.statsfile import save_stats


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


def run_eval(tmp_path, classifier, samples, *overrides) -> int:
    spec = write_spec(tmp_path, protocol="synthetic_fvd", classifier_weights=classifier, batch_size=4)
    return main(["eval", "run", "--spec", spec, "--samples", str(samples), *overrides])


def videos(n: int = 12, shape=(5, 16, 16, 3), dtype=np.uint8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, *shape)).astype(dtype)


def test_missing_samples_file(tmp_path, classifier_file, capsys):
    (tmp_path / "empty").mkdir()
    assert run_eval(tmp_path, classifier_file, tmp_path / "empty") == 2
    assert "empty/samples.npz does not exist; write it with `walt-bench sample" in capsys.readouterr().err


def test_samples_file_with_wrong_keys(tmp_path, classifier_file, capsys):
    np.savez(tmp_path / "s.npz", frames=videos())
    assert run_eval(tmp_path, classifier_file, tmp_path / "s.npz") == 2
    assert "holds ['frames']; expected 'videos'" in capsys.readouterr().err


def test_samples_of_the_wrong_dtype(tmp_path, classifier_file, capsys):
    np.savez(tmp_path / "s.npz", videos=videos(dtype=np.float32))
    assert run_eval(tmp_path, classifier_file, tmp_path / "s.npz") == 2
    assert "float32" in capsys.readouterr().err


def test_samples_of_the_wrong_shape(tmp_path, classifier_file, capsys):
    np.savez(tmp_path / "s.npz", videos=videos(shape=(5, 16, 16, 1)))
    assert run_eval(tmp_path, classifier_file, tmp_path / "s.npz") == 2
    assert "expected uint8 (N, T, H, W, 3)" in capsys.readouterr().err


def test_samples_file_that_is_not_an_npz(tmp_path, classifier_file, capsys):
    (tmp_path / "s.npz").write_bytes(b"not a zip archive at all")
    assert run_eval(tmp_path, classifier_file, tmp_path / "s.npz") == 2
    assert "is not an .npz archive" in capsys.readouterr().err


def test_samples_array_shorter_than_its_header_says(tmp_path, classifier_file, capsys):
    import io
    import zipfile

    buffer = io.BytesIO()
    np.save(buffer, videos(12))
    data = buffer.getvalue()
    with zipfile.ZipFile(tmp_path / "s.npz", "w") as zf:
        zf.writestr("references.npy", data)
        zf.writestr("videos.npy", data[: len(data) // 2])  # a copy that stopped half way
    assert run_eval(tmp_path, classifier_file, tmp_path / "s.npz") == 2
    assert "the file is truncated" in capsys.readouterr().err


def test_fewer_clips_than_eval_num_samples_asks_for(tmp_path, classifier_file, capsys):
    np.savez(tmp_path / "s.npz", videos=videos(12))
    assert run_eval(tmp_path, classifier_file, tmp_path / "s.npz", "eval.num_samples=20") == 2
    err = capsys.readouterr().err
    assert "holds 12 clips but eval.num_samples=20" in err and "eval.num_samples=12" in err


def test_corrupt_classifier_weights(tmp_path, classifier_file, capsys):
    classifier_file.write_bytes(b"\x00garbage")
    np.savez(tmp_path / "s.npz", videos=videos())
    assert run_eval(tmp_path, classifier_file, tmp_path / "s.npz") == 2
    assert f"cannot read synthetic weights {classifier_file}" in capsys.readouterr().err


def test_classifier_weights_of_another_width(tmp_path, classifier_file, capsys):
    meta = json.loads(open(f"{classifier_file}.json").read())
    meta["width"] = 16  # the description no longer matches the stored tensors
    open(f"{classifier_file}.json", "w").write(json.dumps(meta))
    np.savez(tmp_path / "s.npz", videos=videos())
    assert run_eval(tmp_path, classifier_file, tmp_path / "s.npz") == 2
    assert "wrong shape" in capsys.readouterr().err


def test_malformed_classifier_description(tmp_path, classifier_file, capsys):
    open(f"{classifier_file}.json", "w").write("{not json")
    np.savez(tmp_path / "s.npz", videos=videos())
    assert run_eval(tmp_path, classifier_file, tmp_path / "s.npz") == 2
    assert "train-classifier" in capsys.readouterr().err


def test_extractor_returning_the_wrong_feature_size_is_a_weights_error():
    def run(video):
        return {"features": torch.zeros(len(video), 5), "logits": torch.zeros(len(video), 5)}

    ext = Extractor("i3d", "torchscript", "other.pt", 400, 400, run)
    acc = MetricAccumulator(ext, None, resolve(EvalConfig(protocol="rfvd")), per_repeat=4, repeats=1)
    with pytest.raises(WeightsError, match=r"returned features of shape \(2, 5\); expected \(N, 400\)"):
        acc.update(torch.zeros(2, 16, 3, 8, 8))


# -------------------------------------------------------------------------------------------- eval fd


def fd(tmp_path, a, b) -> int:
    return main(["eval", "fd", str(a), str(b)])


@pytest.fixture
def good_stats(tmp_path):
    return save_stats(tmp_path / "good.npz", np.zeros(4), np.eye(4))


def test_fd_stats_without_mu_and_sigma(tmp_path, good_stats, capsys):
    np.savez(tmp_path / "bad.npz", mean=np.zeros(4), cov=np.eye(4))
    assert fd(tmp_path, good_stats, tmp_path / "bad.npz") == 2
    assert "expected the keys 'mu' and 'sigma'" in capsys.readouterr().err


def test_fd_stats_of_mismatched_dimensions(tmp_path, good_stats, capsys):
    save_stats(tmp_path / "d8.npz", np.zeros(8), np.eye(8))
    assert fd(tmp_path, good_stats, tmp_path / "d8.npz") == 2
    assert "Compute both with the same extractor" in capsys.readouterr().err


def test_fd_stats_whose_sigma_does_not_match_mu(tmp_path, good_stats, capsys):
    np.savez(tmp_path / "bad.npz", mu=np.zeros(4), sigma=np.eye(3))
    assert fd(tmp_path, good_stats, tmp_path / "bad.npz") == 2
    assert "expected mu (d,) and sigma (d, d)" in capsys.readouterr().err


def test_fd_stats_given_as_a_plain_npy_array(tmp_path, good_stats, capsys):
    np.save(tmp_path / "bad.npy", np.zeros(4))
    assert fd(tmp_path, good_stats, tmp_path / "bad.npy") == 2
    assert "not an .npz with 'mu' and 'sigma'" in capsys.readouterr().err


def test_fd_stats_file_that_is_a_truncated_archive(tmp_path, good_stats, capsys):
    data = good_stats.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    assert fd(tmp_path, good_stats, tmp_path / "cut.npz") == 2
    assert "cannot read statistics file" in capsys.readouterr().err


def test_fd_stats_with_nan_covariance(tmp_path, good_stats, capsys):
    sigma = np.eye(4)
    sigma[1, 2] = np.nan
    save_stats(tmp_path / "nan.npz", np.zeros(4), sigma)
    assert fd(tmp_path, good_stats, tmp_path / "nan.npz") == 2
    assert "NaN or infinite" in capsys.readouterr().err


def test_fd_accepts_a_row_vector_mean(tmp_path, good_stats, capsys):
    np.savez(tmp_path / "row.npz", mu=np.ones((1, 4)), sigma=np.eye(4))  # a layout some tools write
    assert fd(tmp_path, good_stats, tmp_path / "row.npz") == 0
    assert float(capsys.readouterr().out) == pytest.approx(4.0)
