"""Tokenizer losses: perceptual weights loading, GAN terms, discriminator shapes, a short training run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from walt_bench.errors import WeightsError
from walt_bench.tokenizer import losses
from walt_bench.tokenizer.config import TokenizerConfig
from walt_bench.tokenizer.discriminator import StyleGANDiscriminator3D
from walt_bench.tokenizer.model import CausalAutoencoder


class TinyFeatures(nn.Module):
    """A two-layer stand-in for VGG-16, registered under the name 'tiny' for these tests."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 6, 3, stride=2, padding=1)

    def forward(self, x):
        h1 = torch.relu(self.a(x))
        return [h1, torch.relu(self.b(h1))]


@pytest.fixture
def tiny_network(monkeypatch):
    monkeypatch.setitem(losses.FEATURE_NETWORKS, "tiny", TinyFeatures)


def test_feature_network_loads_saved_weights(tiny_network, tmp_path):
    saved = TinyFeatures()
    torch.save(saved.state_dict(), tmp_path / "tiny.pt")
    net = losses.load_feature_network("tiny", tmp_path / "tiny.pt")
    assert torch.equal(net.b.weight, saved.b.weight)
    assert not net.training and not any(p.requires_grad for p in net.parameters())


def test_perceptual_loss_is_zero_for_equal_clips_and_positive_otherwise(tiny_network, tmp_path):
    torch.save(TinyFeatures().state_dict(), tmp_path / "tiny.pt")
    loss = losses.build_perceptual_loss(0.1, "tiny", str(tmp_path / "tiny.pt"))
    x = torch.rand(2, 3, 3, 8, 8) * 2 - 1
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-7)
    assert loss(x.flip(-1), x).item() > 1e-3


def test_perceptual_weight_without_weights_is_an_error_naming_both_fields():
    with pytest.raises(WeightsError, match="perceptual_weights is not set.*perceptual_weight=0"):
        losses.build_perceptual_loss(0.1, "vgg16", None)
    assert losses.build_perceptual_loss(0.0, "vgg16", None) is None


def test_perceptual_weights_path_that_does_not_exist_is_a_weights_error(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        losses.build_perceptual_loss(0.1, "vgg16", str(tmp_path / "vgg16.pth"))


def test_garbage_weights_file_is_a_weights_error(tiny_network, tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="could not read"):
        losses.load_feature_network("tiny", tmp_path / "bad.pt")


def test_weights_of_another_network_are_a_weights_error(tiny_network, tmp_path):
    torch.save(nn.Conv2d(3, 5, 1).state_dict(), tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="does not match the 'tiny' network"):
        losses.load_feature_network("tiny", tmp_path / "other.pt")


def test_vgg16_loader_accepts_a_full_torchvision_style_state_dict(tmp_path):
    state = losses.VGG16Features().state_dict()
    state["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision's vgg16 also holds the classifier
    torch.save(state, tmp_path / "vgg16.pth")
    net = losses.load_feature_network("vgg16", tmp_path / "vgg16.pth")
    feats = net(torch.zeros(1, 3, 32, 32))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]


def test_non_saturating_losses_prefer_the_right_side():
    good, bad = torch.full((4,), 5.0), torch.full((4,), -5.0)
    assert losses.discriminator_loss(good, bad) < losses.discriminator_loss(bad, good)
    assert losses.generator_loss(good) < losses.generator_loss(bad)


def test_lecam_penalises_distance_to_the_other_sides_anchor():
    lecam = losses.LeCAM(decay=0.0)  # anchors jump to the last means
    lecam.update(torch.tensor([2.0]), torch.tensor([-1.0]))
    assert lecam.ema_real.item() == 2.0 and lecam.ema_fake.item() == -1.0
    # (D(x) - alpha_F)^2 + (D(G(z)) - alpha_R)^2 = (2 + 1)^2 + (-1 - 2)^2
    assert lecam(torch.tensor([2.0]), torch.tensor([-1.0])).item() == pytest.approx(18.0)


def test_r1_penalty_is_the_squared_input_gradient():
    x = torch.randn(3, 4, requires_grad=True)
    logits = (2.0 * x).sum(dim=1)  # gradient 2 everywhere: ||g||^2 = 4 * 4
    assert losses.r1_penalty(logits, x).item() == pytest.approx(16.0)


def test_discriminator_scores_videos_and_images_with_the_same_weights():
    disc = StyleGANDiscriminator3D((16, 16), channels=4, multipliers=(1, 2))
    assert disc(torch.randn(2, 17, 3, 16, 16)).shape == (2,)
    assert disc(torch.randn(2, 1, 3, 16, 16)).shape == (2,)


def test_short_training_lowers_the_reconstruction_loss():
    cfg = TokenizerConfig(
        channels=8, channel_multipliers=[1, 2], num_res_blocks=1, num_groups=4, f_s=2, f_t=2
    )
    model = CausalAutoencoder(cfg)
    # smooth moving gradients: a learnable signal, 5 frames of 8x8
    t = torch.arange(5).view(1, 5, 1, 1, 1).float()
    yy = torch.linspace(-1, 1, 8).view(1, 1, 1, 8, 1)
    phase = torch.rand(4, 1, 3, 1, 1) * 3
    video = torch.sin(2 * yy + 0.5 * t + phase).expand(4, 5, 3, 8, 8).contiguous()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        x_hat, _ = model(video)
        loss = losses.reconstruction_loss(x_hat, video, "l2")
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first


def _objective_setup(**kw):
    from walt_bench.tokenizer.objective import Critic, TokenizerObjective

    base = dict(
        channels=4,
        channel_multipliers=[1, 2],
        num_res_blocks=1,
        num_groups=2,
        f_s=2,
        f_t=2,
        perceptual_weight=0.0,
    )
    cfg = TokenizerConfig(**{**base, "discriminator_start_step": 5, **kw})
    critic = Critic(StyleGANDiscriminator3D((8, 8), channels=4, multipliers=(1,)), lecam_decay=0.5)
    return TokenizerObjective(cfg), CausalAutoencoder(cfg), critic


def test_adversarial_term_joins_the_generator_loss_from_the_start_step():
    objective, model, critic = _objective_setup(latent_kind="kl")
    video = torch.rand(2, 3, 3, 8, 8) * 2 - 1
    _, _, before = objective.generator_loss(model, critic, video, step=4)
    _, _, after = objective.generator_loss(model, critic, video, step=5)
    assert "g_adv" not in before and "g_adv" in after
    assert "kl" in before and before["kl"] > 0


def test_generator_loss_gives_the_discriminator_no_gradient():
    objective, model, critic = _objective_setup()
    loss, _, _ = objective.generator_loss(model, critic, torch.rand(2, 3, 3, 8, 8), step=10)
    loss.backward()
    assert all(p.grad is None for p in critic.parameters())
    assert all(p.requires_grad for p in critic.parameters())


def test_discriminator_loss_adds_r1_and_moves_the_lecam_anchors():
    objective, model, critic = _objective_setup(r1_weight=10.0)
    video = torch.rand(2, 3, 3, 8, 8) * 2 - 1
    _, x_hat, _ = objective.generator_loss(model, critic, video, step=10)
    loss, metrics = objective.discriminator_loss(critic, critic.lecam, video, x_hat)
    loss.backward()
    assert metrics["r1"] > 0 and "lecam" in metrics
    assert critic.lecam.ema_real.item() == pytest.approx(0.5 * metrics["real_logit"].item())
    assert critic.network.logit.weight.grad is not None
