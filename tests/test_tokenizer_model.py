"""The causal autoencoder: shapes, causality, image = first frame of a video, geometry errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from walt_bench.errors import UserError
from walt_bench.tokenizer import layers
from walt_bench.tokenizer.config import TokenizerConfig
from walt_bench.tokenizer.model import CausalAutoencoder


def tiny_cfg(**kw) -> TokenizerConfig:
    base = dict(channels=8, channel_multipliers=[1, 2, 2, 4], num_res_blocks=1, num_groups=4, f_s=8, f_t=4)
    return TokenizerConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def model() -> CausalAutoencoder:
    torch.manual_seed(0)
    m = CausalAutoencoder(tiny_cfg()).eval()
    with torch.no_grad():  # adaptive norms start at zero; give them weight so the decoder test sees them
        for mod in m.modules():
            if isinstance(mod, layers.AdaptiveGroupNorm):
                mod.proj.weight.normal_(0, 0.1)
    return m


def latent_frames_changed(model, video: torch.Tensor, k: int) -> list[bool]:
    """Which latent frames change when pixel frame ``k`` changes."""
    with torch.no_grad():
        z = model.encode(video)
        moved = video.clone()
        moved[:, k] = torch.rand_like(moved[:, k]) * 2 - 1
        z2 = model.encode(moved)
    return [not torch.equal(z[:, j], z2[:, j]) for j in range(z.shape[1])]


def test_video_17_frames_encodes_to_5_latent_frames_and_back(model):
    video = torch.rand(2, 17, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        z = model.encode(video)
        assert z.shape == (2, 5, 8, 4, 4)
        assert model.decode(z).shape == (2, 17, 3, 32, 32)


def test_image_encodes_to_one_latent_frame_and_back(model):
    image = torch.rand(3, 1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        z = model.encode(image)
        assert z.shape == (3, 1, 8, 4, 4)
        assert model.decode(z).shape == (3, 1, 3, 32, 32)


def test_image_latent_is_the_first_latent_frame_of_a_video_starting_with_it(model):
    video = torch.rand(2, 17, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        z_video = model.encode(video)
        z_image = model.encode(video[:, :1])
    torch.testing.assert_close(z_image[:, 0], z_video[:, 0], rtol=0, atol=1e-6)


def test_encoder_is_causal_in_time(model):
    video = torch.rand(1, 17, 3, 32, 32) * 2 - 1
    for k in (1, 4, 5, 9, 16):
        changed = latent_frames_changed(model, video, k)
        # latent j encodes pixel frames <= 4j, so latents j < ceil(k/4) must not move; latent ceil(k/4) must
        first = -(-k // 4)
        assert changed == [j >= first for j in range(5)], (k, changed)


def test_frames_after_the_first_never_affect_latent_frame_0(model):
    video = torch.rand(1, 17, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        z = model.encode(video)
        other = video.clone()
        other[:, 1:] = torch.rand_like(other[:, 1:]) * 2 - 1
        assert torch.equal(model.encode(other)[:, 0], z[:, 0])


def test_decoder_is_causal_in_time(model):
    z = torch.randn(1, 5, 8, 4, 4)
    with torch.no_grad():
        x = model.decode(z)
        z2 = z.clone()
        z2[:, 2] += 1.0
        x2 = model.decode(z2)
    # latent 2 decodes pixel frames 5..8; frames 0..4 depend only on latents 0, 1
    assert torch.equal(x[:, :5], x2[:, :5])
    assert not torch.equal(x[:, 5:9], x2[:, 5:9])


def test_causality_check_catches_a_same_padded_conv(monkeypatch):
    """The causality test has teeth: a conv padded on both sides in time ('same') breaks it."""

    def same_padded(self, x):
        p = self.conv.kernel_size[0] // 2
        return self.conv(F.pad(x, (p, p, p, p, p, p)))

    monkeypatch.setattr(layers.CausalConv3d, "forward", same_padded)
    torch.manual_seed(0)
    leaky = CausalAutoencoder(tiny_cfg()).eval()
    changed = latent_frames_changed(leaky, torch.rand(1, 17, 3, 32, 32) * 2 - 1, k=5)
    assert changed[1]  # latent 1 (pixel frames 1..4) now sees frame 5


def test_causal_conv_zero_padding_is_also_causal():
    conv = layers.CausalConv3d(2, 3, 3, padding_mode="zeros")
    x = torch.randn(1, 2, 6, 5, 5)
    y = conv(x)
    x2 = x.clone()
    x2[:, :, 3] += 1
    assert y.shape == (1, 3, 6, 5, 5)
    assert torch.equal(conv(x2)[:, :, :3], y[:, :, :3])


def test_temporal_downsample_keeps_the_first_frame_alone():
    down = layers.Downsample(2, 2, temporal=True, padding_mode="replicate")
    assert down(torch.randn(1, 2, 17, 8, 8)).shape == (1, 2, 9, 4, 4)
    assert down(torch.randn(1, 2, 1, 8, 8)).shape == (1, 2, 1, 4, 4)


def test_depth_to_space_maps_5_to_9_to_17_frames():
    up = layers.DepthToSpaceUpsample(4, 2, temporal=True, padding_mode="replicate")
    assert up(torch.randn(1, 4, 5, 4, 4)).shape == (1, 2, 9, 8, 8)
    assert up(torch.randn(1, 4, 9, 4, 4)).shape == (1, 2, 17, 8, 8)
    assert up(torch.randn(1, 4, 1, 4, 4)).shape == (1, 2, 1, 8, 8)


def test_kl_latents_encode_to_the_posterior_mean():
    torch.manual_seed(0)
    m = CausalAutoencoder(tiny_cfg(latent_kind="kl")).eval()
    video = torch.rand(1, 5, 3, 32, 32) * 2 - 1
    post = m.posterior(video)
    assert post.mean.shape == post.logvar.shape == (1, 2, 8, 4, 4)
    assert torch.equal(m.encode(video), post.mean)
    assert post.kl() > 0


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(f_s=4), "f_s must be 8"),
        (dict(f_t=16), "f_t=16 must be one of 1, 2, 4, 8"),
        (dict(f_t=3), "f_t=3 must be one of"),
        (dict(num_groups=3), "num_groups=3 does not divide"),
    ],
)
def test_inconsistent_geometry_is_a_clear_error(kw, message):
    with pytest.raises(ValueError, match=message):
        tiny_cfg(**kw)


def test_clip_that_does_not_fit_the_compression_is_a_user_error(model):
    with pytest.raises(UserError, match="T = 1 \\+ 4k"):
        model.encode(torch.zeros(1, 16, 3, 32, 32))
