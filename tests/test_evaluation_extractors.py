"""Feature extractors: weight resolution and errors, TorchScript / state-dict / TF-Hub loading, preprocessing."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from walt_bench.errors import WeightsError
from walt_bench.evaluation.c3d import C3D
from walt_bench.evaluation.config import EvalConfig
from walt_bench.evaluation.extractors import (
    build_extractor,
    i3d_input,
    load_i3d,
    load_inception,
    resolve_weights,
)
from walt_bench.evaluation.i3d import InceptionI3d
from walt_bench.evaluation.inception import FIDInceptionV3
from walt_bench.evaluation.resize import resize_bilinear_tf1


@pytest.fixture(autouse=True)
def _no_weights_env(monkeypatch, tmp_path):
    for var in (
        "WALT_I3D_WEIGHTS",
        "WALT_INCEPTION_WEIGHTS",
        "WALT_C3D_WEIGHTS",
        "WALT_SYNTHETIC_CLASSIFIER",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WALT_WEIGHTS_DIR", str(tmp_path / "weights"))


class TinyScriptI3D(torch.nn.Module):
    """Same calling convention as StyleGAN-V's i3d_torchscript.pt; flags change the output if misused."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 400)

    def forward(
        self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> torch.Tensor:
        feats = self.proj(x.mean(dim=(2, 3, 4)))  # x: (B, 3, T, H, W)
        if rescale or resize:
            feats = feats * 0.0
        if not return_features:
            return torch.softmax(feats, dim=-1)
        return feats


def test_missing_weights_error_names_the_file_the_variable_and_the_folder(tmp_path):
    with pytest.raises(WeightsError) as err:
        build_extractor("i3d", EvalConfig())
    message = str(err.value)
    assert "i3d_torchscript.pt" in message and "WALT_I3D_WEIGHTS" in message
    assert str(tmp_path / "weights") in message and "eval.i3d_weights" in message


def test_missing_file_named_in_the_spec_is_reported(tmp_path):
    with pytest.raises(WeightsError, match="nope.pth"):
        build_extractor("inception", EvalConfig(inception_weights=str(tmp_path / "nope.pth")))


def test_the_synthetic_classifier_fallback_is_never_used_for_other_networks(tmp_path):
    stray = tmp_path / "synthetic_classifier.pt"
    stray.write_bytes(b"x")
    with pytest.raises(WeightsError, match="i3d weights not found"):
        build_extractor("i3d", EvalConfig(), fallback=stray)


def test_environment_variable_and_default_folder_are_used(tmp_path, monkeypatch):
    env_file = tmp_path / "c3d.pt"
    env_file.write_bytes(b"x")
    monkeypatch.setenv("WALT_C3D_WEIGHTS", str(env_file))
    assert resolve_weights("c3d", None) == str(env_file)
    monkeypatch.delenv("WALT_C3D_WEIGHTS")
    default = tmp_path / "weights" / "c3d_ucf101.pt"
    default.parent.mkdir()
    default.write_bytes(b"x")
    assert resolve_weights("c3d", None) == str(default)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_i3d_is_called_with_stylegan_v_convention(tmp_path):
    module = TinyScriptI3D()
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(module).save(str(path))
    extractor = load_i3d(str(path))
    video = torch.rand(2, 4, 3, 8, 8) * 2 - 1
    out = extractor(video)
    expected = module(i3d_input(video), return_features=True).detach().numpy()
    assert extractor.backend == "torchscript"
    np.testing.assert_allclose(out["features"], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(out["features"].sum(-1), 1.0)  # logits, not softmax


def test_i3d_input_is_tf1_resize_to_224_channels_first():
    video = torch.rand(1, 3, 3, 10, 12) * 2 - 1
    x = i3d_input(video)
    assert x.shape == (1, 3, 3, 224, 224)
    torch.testing.assert_close(x[0, :, 1], resize_bilinear_tf1(video[0, 1], (224, 224)))


def test_i3d_state_dict_of_our_network_loads(tmp_path):
    model = InceptionI3d().eval()
    model.Mixed_5c.b0.bn.running_mean.normal_()
    path = tmp_path / "i3d.pt"
    torch.save(model.state_dict(), path)
    extractor = load_i3d(str(path))
    assert extractor.backend == "state_dict"
    x = torch.rand(1, 3, 8, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(extractor.module(x), model(x))
    assert model(x).shape == (1, 400)


def test_state_dict_with_wrong_keys_is_a_weights_error(tmp_path):
    path = tmp_path / "bad.pt"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(WeightsError, match="does not match InceptionI3d"):
        load_i3d(str(path))


def test_inception_loads_the_pt_inception_layout_and_gives_pool3_and_unbiased_logits(tmp_path):
    model = FIDInceptionV3().eval()
    state = model.state_dict()
    assert state["fc.weight"].shape == (1008, 2048)
    assert "Mixed_7c.branch3x3dbl_3b.bn.running_var" in state and "Conv2d_1a_3x3.conv.weight" in state
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, path)
    extractor = load_inception(str(path))
    out = extractor(torch.rand(1, 2, 3, 16, 16) * 2 - 1)  # two frames -> two images
    assert out["features"].shape == (2, 2048)
    weight = model.fc.weight.detach().double().numpy()
    np.testing.assert_allclose(out["logits"], out["features"] @ weight.T, rtol=1e-4, atol=1e-4)


def test_c3d_preprocessing_is_bgr_aligned_resize_scaled_to_255_plus_offset():
    model = C3D(num_frames=16, size=32).eval()
    model.x_offset.fill_(-10.0)
    video = torch.zeros(1, 16, 3, 8, 8)
    video[:, :, 0] = 1.0  # red = 255, green/blue = 127.5
    x = model.preprocess(video)  # (B, 3, T, 32, 32) in BGR
    assert x.shape == (1, 3, 16, 32, 32)
    torch.testing.assert_close(x[0, 2], torch.full((16, 32, 32), 245.0))
    torch.testing.assert_close(x[0, 0], torch.full((16, 32, 32), 117.5))
    out = model(video)
    assert out["features"].shape == (1, 4096) and out["logits"].shape == (1, 101)


def require_tfhub():
    """CI (``WALT_REQUIRE_TFHUB=1``, set by .ci/run) must run the TF-Hub path; elsewhere it may skip."""
    reason = (
        "the tfhub extra is not installed (pip install -e '.[tfhub]' or make test EXTRAS=dev,tfhub); CI runs "
        "this test"
    )
    if os.environ.get("WALT_REQUIRE_TFHUB") == "1":
        import tensorflow_hub  # noqa: F401 - an ImportError here fails CI instead of skipping

        return
    pytest.importorskip("tensorflow_hub", reason=reason)


def test_tfhub_savedmodel_directory_loads(tmp_path):
    """A SavedModel written locally loads through the same ``hub.load`` call as DeepMind's I3D module."""
    require_tfhub()
    import tensorflow as tf

    weight = np.random.default_rng(0).normal(size=(3, 400)).astype(np.float32)

    class Tiny(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(weight)

        @tf.function(input_signature=[tf.TensorSpec([None, None, 224, 224, 3], tf.float32)])
        def __call__(self, x):
            return {"default": tf.matmul(tf.reduce_mean(x, axis=[1, 2, 3]), self.w)}

    module = Tiny()
    tf.saved_model.save(module, str(tmp_path / "i3d"), signatures={"default": module.__call__})
    extractor = load_i3d(str(tmp_path / "i3d"))
    video = torch.rand(2, 4, 3, 8, 8) * 2 - 1
    expected = i3d_input(video).permute(0, 2, 3, 4, 1).mean(dim=(1, 2, 3)).numpy() @ weight
    assert extractor.backend == "tfhub"
    np.testing.assert_allclose(extractor(video)["features"], expected, rtol=1e-4, atol=1e-5)


class NoFlagsScript(torch.nn.Module):
    """A TorchScript network without StyleGAN-V's flags (e.g. a plain exported classifier)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3, 4))


def test_torchscript_without_the_i3d_flags_is_a_weights_error(tmp_path):
    path = tmp_path / "other.pt"
    torch.jit.script(NoFlagsScript()).save(str(path))
    with pytest.raises(WeightsError, match=r"without \['rescale', 'resize', 'return_features'\]"):
        load_i3d(str(path))


def test_state_dict_with_right_keys_but_wrong_shapes_is_a_weights_error(tmp_path):
    from walt_bench.evaluation.classifier import SyntheticVideoClassifier
    from walt_bench.evaluation.extractors import load_state_dict_into

    state = SyntheticVideoClassifier(num_classes=3, width=4).state_dict()
    key = next(k for k, v in state.items() if v.ndim == 5)
    state[key] = torch.zeros(1, 1, 1, 1, 1)
    torch.save(state, tmp_path / "clf.pt")
    with pytest.raises(WeightsError, match=rf"wrong shape \['{key} \(1, 1, 1, 1, 1\)"):
        load_state_dict_into(
            SyntheticVideoClassifier(num_classes=3, width=4), tmp_path / "clf.pt", "synthetic"
        )


def tf1_resize_bilinear_reference(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1 ``resize_bilinear`` (align_corners=False, no half-pixel centres) written as TF's kernel loops:
    in = out * (in_size / out_size), top = floor(in), bottom = min(top + 1, in_size - 1)."""
    in_h, in_w = image.shape[:2]
    out = np.zeros((out_h, out_w, *image.shape[2:]))
    for y in range(out_h):
        fy = y * (in_h / out_h)
        top, dy = int(np.floor(fy)), fy - np.floor(fy)
        bottom = min(top + 1, in_h - 1)
        for x in range(out_w):
            fx = x * (in_w / out_w)
            left, dx = int(np.floor(fx)), fx - np.floor(fx)
            right = min(left + 1, in_w - 1)
            upper = image[top, left] + (image[top, right] - image[top, left]) * dx
            lower = image[bottom, left] + (image[bottom, right] - image[bottom, left]) * dx
            out[y, x] = upper + (lower - upper) * dy
    return out


def test_i3d_input_equals_the_tf_reference_fvd_preprocessing():
    # frechet_video_distance.preprocess: uint8 frames -> resize_bilinear to 224 -> 2 * x / 255 - 1,
    # then the I3D sees (B, T, 224, 224, 3); the TorchScript takes the same tensor as (B, 3, T, 224, 224).
    clip = np.random.default_rng(3).integers(0, 256, size=(1, 2, 9, 13, 3), dtype=np.uint8)
    pixels = torch.from_numpy(clip).permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0  # our (B, T, 3, H, W)
    ours = i3d_input(pixels).double().numpy()  # (B, 3, T, 224, 224)
    assert ours.shape == (1, 3, 2, 224, 224)
    for t in range(2):
        expected = 2.0 * tf1_resize_bilinear_reference(clip[0, t].astype(np.float64), 224, 224) / 255.0 - 1.0
        np.testing.assert_allclose(ours[0, :, t].transpose(1, 2, 0), expected, atol=2e-6)
