"""The training loss step: self-conditioning (§4.3), frame prediction (§4.4), CFG dropout, joint image-video
batches, SR noise augmentation (§4.5), and that a tiny model learns."""

from __future__ import annotations

import torch
from test_diffusion_standin import TinyDenoiser

from walt_bench.diffusion.config import DiffusionConfig
from walt_bench.diffusion.schedule import NoiseSchedule
from walt_bench.diffusion.step import DiffusionObjective


def _objective(model: TinyDenoiser, **cfg) -> DiffusionObjective:
    cfg = DiffusionConfig(**cfg)
    return DiffusionObjective(
        cfg,
        NoiseSchedule.from_config(cfg),
        num_classes=model.label_emb.num_embeddings - 1 if model.label_emb is not None else 0,
        self_condition=model.self_condition,
        frame_condition=model.frame_condition,
        lowres_condition=model.lowres_condition,
    )


def test_self_conditioning_runs_a_gradient_free_first_pass_feeding_x0_estimate():
    model = TinyDenoiser(4)
    z0 = torch.randn(3, 2, 4, 4, 4)
    loss, stats = _objective(model, p_sc=1.0)(model, z0)
    first, second = model.calls
    assert torch.count_nonzero(first["self_cond"]) == 0
    assert second["self_cond"].shape == z0.shape and torch.count_nonzero(second["self_cond"]) > 0
    assert not second["self_cond"].requires_grad and stats["sc_rate"] == 1.0
    loss.backward()


def test_no_self_conditioning_is_one_pass_with_zeros():
    model = TinyDenoiser(4)
    _objective(model, p_sc=0.0)(model, torch.randn(3, 2, 4, 4, 4))
    assert len(model.calls) == 1 and torch.count_nonzero(model.calls[0]["self_cond"]) == 0


def test_p_sc_changes_the_loss():
    z0 = torch.randn(4, 2, 4, 4, 4)
    losses = []
    for p in (0.0, 1.0):
        torch.manual_seed(0)
        model = TinyDenoiser(4)
        losses.append(_objective(model, p_sc=p)(model, z0, generator=torch.Generator().manual_seed(1))[0])
    assert not torch.allclose(losses[0], losses[1])


def test_frame_prediction_conditions_on_clean_latents_and_masks_the_loss():
    model = TinyDenoiser(4, frame_condition=True)
    z0 = torch.randn(6, 3, 4, 4, 4)
    obj = _objective(model, p_sc=0.0, p_fp=1.0, fp_frames=[2], cond_drop_prob=0.0)
    obj(model, z0)
    fc = model.calls[0]["frame_cond"]
    assert fc.shape == (6, 3, 5, 4, 4)
    assert torch.equal(fc[:, :, 4], torch.tensor([1.0, 1.0, 0.0]).view(1, 3, 1, 1).expand(6, 3, 4, 4))
    torch.testing.assert_close(fc[:, :2, :4], z0[:, :2])  # clean context latents, not z_t
    assert torch.count_nonzero(fc[:, 2]) == 0


def test_frame_prediction_loss_ignores_the_conditioning_frames():
    z0 = torch.randn(6, 3, 4, 4, 4)
    cfg = DiffusionConfig(p_sc=0.0, p_fp=1.0, fp_frames=[2], cond_drop_prob=0.0)
    sched = NoiseSchedule.from_config(cfg)
    obj = DiffusionObjective(cfg, sched, self_condition=False, frame_condition=True)

    def exact_except_context(z_t, t, **kwargs):
        """The true v on frame 2, garbage on the two context frames."""
        g = sched.gamma(t).view(-1, 1, 1, 1, 1)
        eps = (z_t - g.sqrt() * z0) / (1 - g).sqrt()
        v = g.sqrt() * eps - (1 - g).sqrt() * z0
        v[:, :2] = 100.0
        return v

    loss, stats = obj(exact_except_context, z0)
    assert stats["fp_rate"] == 1.0 and loss.item() < 1e-8
    obj.cfg = DiffusionConfig(p_sc=0.0, p_fp=0.0)
    assert obj(exact_except_context, z0)[0].item() > 1000


def test_conditioning_dropout_nulls_labels_and_frame_condition_together():
    model = TinyDenoiser(4, num_classes=5, frame_condition=True)
    obj = _objective(model, p_sc=0.0, p_fp=1.0, fp_frames=[1], cond_drop_prob=1.0)
    obj(model, torch.randn(4, 3, 4, 4, 4), labels=torch.tensor([0, 1, 2, 3]))
    call = model.calls[0]
    assert torch.equal(call["labels"], torch.full((4,), 5))
    assert torch.count_nonzero(call["frame_cond"]) == 0


def test_image_stacks_get_per_frame_times_and_no_frame_prediction():
    model = TinyDenoiser(4, frame_condition=True)
    obj = _objective(model, p_sc=0.0, p_fp=1.0, fp_frames=[1], cond_drop_prob=0.0)
    is_image = torch.tensor([True, False])
    obj(model, torch.randn(2, 3, 4, 4, 4), is_image=is_image)
    t, fc = model.calls[0]["t"], model.calls[0]["frame_cond"]
    assert t.shape == (2, 3)
    assert len(set(t[1].tolist())) == 1 and len(set(t[0].tolist())) > 1
    assert torch.count_nonzero(fc[0]) == 0 and fc[1, 0, 4].min() == 1.0


def test_super_resolution_noises_the_lowres_latent_and_feeds_t_sr():
    model = TinyDenoiser(4, lowres_condition=True)
    obj = _objective(model, p_sc=0.0, t_max_noise=0.3, sample_noise_aug=0.1)
    lowres = torch.randn(8, 2, 4, 2, 2)
    obj(model, torch.randn(8, 2, 4, 4, 4), lowres=lowres)
    call = model.calls[0]
    assert call["lowres"].shape == lowres.shape and not torch.equal(call["lowres"], lowres)


def test_zero_terminal_snr_switch_changes_the_loss():
    z0 = torch.randn(4, 2, 4, 4, 4)
    losses = []
    for zsnr in (True, False):
        torch.manual_seed(0)
        model = TinyDenoiser(4)
        obj = _objective(model, p_sc=0.0, zero_terminal_snr=zsnr, timestep_sampling="continuous")
        losses.append(obj(model, z0, generator=torch.Generator().manual_seed(2))[0])
    assert not torch.allclose(losses[0], losses[1])


def test_a_tiny_model_learns_synthetic_latents():
    torch.manual_seed(0)
    model = TinyDenoiser(4, num_classes=2, width=32)
    obj = _objective(model, p_sc=0.5)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    # structured latents: each class is a fixed pattern plus small noise
    patterns = torch.randn(2, 1, 4, 4, 4)

    def batch():
        labels = torch.randint(0, 2, (16,), generator=gen)
        return patterns[labels].expand(16, 3, 4, 4, 4) + 0.1 * torch.randn(
            16, 3, 4, 4, 4, generator=gen
        ), labels

    def eval_loss():
        eg = torch.Generator().manual_seed(123)
        z, y = patterns[torch.arange(16) % 2].expand(16, 3, 4, 4, 4), torch.arange(16) % 2
        with torch.no_grad():
            return sum(obj(model, z, labels=y, generator=eg)[0].item() for _ in range(8)) / 8

    start = eval_loss()
    for _ in range(250):
        z, y = batch()
        loss, _ = obj(model, z, labels=y, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.calls.clear()
    end = eval_loss()
    assert end < 0.5 * start, (start, end)


class _FixedV(torch.nn.Module):
    """Returns v̂ = 0.5 z_t + 1 and records every call's inputs."""

    def __init__(self):
        super().__init__()
        self.calls: list[dict] = []

    def forward(self, z_t, t, **kwargs):
        self.calls.append({"z_t": z_t, "t": t, **kwargs})
        return 0.5 * z_t + 1.0


def test_self_conditioning_feeds_the_x0_estimate_of_the_first_pass_not_its_v():
    """§4.3: the second pass sees x̂0 = √γ z_t − √(1−γ) v̂ of the first pass (Salimans & Ho), not v̂ itself."""
    model = _FixedV()
    obj = DiffusionObjective(DiffusionConfig(p_sc=1.0), NoiseSchedule(), self_condition=True)
    obj(model, torch.randn(3, 2, 4, 4, 4), generator=torch.Generator().manual_seed(0))
    first, second = model.calls
    gamma = NoiseSchedule().gamma(first["t"]).view(-1, 1, 1, 1, 1)
    v_hat = 0.5 * first["z_t"] + 1.0
    expected = gamma.sqrt() * first["z_t"] - (1 - gamma).sqrt() * v_hat
    torch.testing.assert_close(second["self_cond"], expected)
    assert not torch.allclose(second["self_cond"], v_hat)


def test_super_resolution_training_conditions_the_model_on_t_sr():
    """§4.5: the noise-augmentation level t_sr ~ U(0, t_max_noise) reaches the model (its AdaLN conditioning)."""
    model = _FixedV()
    cfg = DiffusionConfig(p_sc=0.0, t_max_noise=0.3, sample_noise_aug=0.1)
    obj = DiffusionObjective(cfg, NoiseSchedule.from_config(cfg), self_condition=False, lowres_condition=True)
    lowres = torch.randn(64, 2, 4, 2, 2)
    obj(model, torch.randn(64, 2, 4, 4, 4), lowres=lowres, generator=torch.Generator().manual_seed(0))
    t_sr = model.calls[0].get("noise_aug")
    assert t_sr is not None and t_sr.shape == (64,)
    assert float(t_sr.min()) >= 0.0 and float(t_sr.max()) <= 0.3 and t_sr.std() > 0.05
    # the low-res latent is noised with exactly that level: its signal part is sqrt(gamma(t_sr)) * lowres
    gamma = NoiseSchedule.from_config(cfg).gamma(t_sr).view(-1, 1, 1, 1, 1)
    residual = model.calls[0]["lowres"] - gamma.sqrt() * lowres
    noise_scale = residual.flatten(1).std(dim=1) / (1 - gamma).sqrt().flatten()
    torch.testing.assert_close(noise_scale.mean(), torch.tensor(1.0), atol=0.15, rtol=0)
