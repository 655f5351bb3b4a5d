"""Weights files people actually have: pre-2018 I3D state dicts, StyleGAN-V's TorchScript I3D and C3D, MAGVIT's
flax C3D through `walt-bench eval convert-c3d`; TorchScript loading is announced with the file's SHA-256."""

from __future__ import annotations

import logging

import msgpack
import numpy as np
import pytest
import torch

from walt_bench.cli import main
from walt_bench.errors import WeightsError
from walt_bench.evaluation.c3d import C3D
from walt_bench.evaluation.extractors import load_c3d, load_i3d
from walt_bench.evaluation.i3d import InceptionI3d
from walt_bench.hashing import file_sha256

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script is deprecated


def test_i3d_state_dict_without_num_batches_tracked_loads_like_torchs_strict_load(tmp_path):
    model = InceptionI3d().eval()
    model.Mixed_4b.b1b.bn.running_var.uniform_(0.5, 2.0)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(state) < len(model.state_dict())  # the layout of piergiaj's rgb_imagenet.pt (pre-2018)
    InceptionI3d().load_state_dict(state, strict=True)  # torch itself accepts it
    torch.save(state, tmp_path / "rgb_imagenet.pt")
    extractor = load_i3d(str(tmp_path / "rgb_imagenet.pt"))
    x = torch.rand(1, 3, 8, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(extractor.module(x), model(x))


class TinyScriptI3D(torch.nn.Module):
    def forward(
        self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> torch.Tensor:
        return x.mean(dim=(2, 3, 4)).repeat(1, 134)[:, :400]


def test_loading_torchscript_says_it_runs_code_and_every_result_records_the_hash(tmp_path, caplog):
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(TinyScriptI3D()).save(str(path))
    with caplog.at_level(logging.WARNING, logger="walt_bench.evaluation"):
        extractor = load_i3d(str(path))
    assert "runs code stored in that file" in caplog.text and file_sha256(path) in caplog.text
    described = extractor.describe()
    assert described["weights_sha256"] == file_sha256(path) and described["runs_code_from_weights"] is True


class StyleGanVC3D(torch.nn.Module):
    """StyleGAN-V's c3d_ucf101.pt convention: uint8 (B, 3, T, H, W) in [0, 255] -> probabilities (B, 101)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8:
            raise RuntimeError("expected uint8 clips")
        means = x.float().mean(dim=(2, 3, 4))  # (B, 3)
        return torch.softmax(torch.cat([means, torch.zeros(x.shape[0], 98)], dim=1) / 50.0, dim=1)


def test_stylegan_v_torchscript_c3d_is_called_with_uint8_clips_and_its_probabilities_give_the_is_logits(
    tmp_path,
):
    path = tmp_path / "c3d_ucf101.pt"
    torch.jit.script(StyleGanVC3D()).save(str(path))
    extractor = load_c3d(str(path))
    assert extractor.backend == "torchscript" and extractor.num_classes == 101
    clips = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 16, 3, 8, 8), dtype=np.uint8))
    logits = extractor(clips.float() / 127.5 - 1)["logits"]
    expected = StyleGanVC3D()(clips.permute(0, 2, 1, 3, 4)).double()
    np.testing.assert_allclose(np.exp(logits), expected.numpy(), rtol=1e-6)  # softmax(log p) = p


def test_torchscript_c3d_that_returns_no_probabilities_is_a_weights_error(tmp_path):
    class Logits(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.float().mean(dim=(2, 3, 4)).repeat(1, 34)[:, :101] - 100.0

    torch.jit.script(Logits()).save(str(tmp_path / "c3d.pt"))
    with pytest.raises(WeightsError, match="not class probabilities"):
        load_c3d(str(tmp_path / "c3d.pt"))(torch.zeros(1, 16, 3, 8, 8))


def flax_tree(model: C3D) -> dict:
    """MAGVIT's parameter tree for ``model`` (kernels in flax layout), as ``flax.serialization`` stores it."""
    params = {}
    for name in (*C3D.CONVS, *C3D.DENSES):
        layer = getattr(model, name)
        weight = layer.weight.detach().numpy()
        kernel = weight.transpose(2, 3, 4, 1, 0) if weight.ndim == 5 else weight.T
        params[name] = {"kernel": np.ascontiguousarray(kernel), "bias": layer.bias.detach().numpy()}
    params["x_offset"] = model.x_offset.numpy()
    return {"params": params}


def write_flax(tree: dict, path) -> None:
    def pack(obj):
        if isinstance(obj, np.ndarray):  # flax's ndarray extension: (shape, dtype name, C-order bytes)
            return msgpack.ExtType(1, msgpack.packb((obj.shape, obj.dtype.name, obj.tobytes("C"))))
        raise TypeError(type(obj))

    path.write_bytes(msgpack.packb(tree, default=pack))


def test_magvit_flax_c3d_converts_to_a_state_dict_that_computes_the_same_network(tmp_path, capsys):
    torch.manual_seed(0)
    model = C3D(num_frames=16, size=16, base=2, hidden=8).eval()
    model.x_offset.normal_()
    write_flax(flax_tree(model), tmp_path / "c3d_ucf101.flax")
    args = ["eval", "convert-c3d", str(tmp_path / "c3d_ucf101.flax"), "--out", str(tmp_path / "c3d.pt")]
    assert main(args) == 0
    assert "sha256" in capsys.readouterr().out
    converted = C3D(num_frames=16, size=16, base=2, hidden=8).eval()
    converted.load_state_dict(torch.load(tmp_path / "c3d.pt", weights_only=True), strict=True)
    video = torch.rand(2, 16, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(converted(video)["logits"], model(video)["logits"])


def test_the_flax_checkpoint_given_directly_names_the_converter(tmp_path):
    write_flax({"params": {"conv1a": {"kernel": np.zeros((1,), np.float32)}}}, tmp_path / "c3d_ucf101.flax")
    with pytest.raises(WeightsError, match="walt-bench eval convert-c3d"):
        load_c3d(str(tmp_path / "c3d_ucf101.flax"))


def test_converting_something_else_is_a_weights_error(tmp_path, capsys):
    write_flax({"params": {"dense": {"kernel": np.zeros((2, 2), np.float32)}}}, tmp_path / "other.flax")
    assert main(["eval", "convert-c3d", str(tmp_path / "other.flax"), "--out", str(tmp_path / "x.pt")]) == 2
    assert "is not MAGVIT's C3D checkpoint" in capsys.readouterr().err


def test_a_c3d_file_of_another_layout_is_a_weights_error(tmp_path):
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "c3d_ucf101.pt")
    with pytest.raises(WeightsError, match="does not match C3D"):
        load_c3d(str(tmp_path / "c3d_ucf101.pt"))
