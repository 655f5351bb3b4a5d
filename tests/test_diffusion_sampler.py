"""DDIM (Song et al.) in v-parameterisation, timestep spacing, guidance, autoregressive chunks, determinism."""

from __future__ import annotations

import torch
from test_diffusion_standin import TinyDenoiser

from walt_bench.diffusion.config import DiffusionConfig
from walt_bench.diffusion.generate import StageSampler
from walt_bench.diffusion.objective import LatentNormalizer, v_target
from walt_bench.diffusion.sampler import (
    classifier_free_guidance,
    ddim_step,
    ddim_timesteps,
    sample_autoregressive,
    sample_ddim,
)
from walt_bench.diffusion.schedule import NoiseSchedule


def test_trailing_spacing_starts_at_t1_and_ends_at_zero():
    ts = ddim_timesteps(50, 1000, "trailing")
    assert ts.shape == (51,) and ts[0].item() == 1.0 and ts[-1].item() == 0.0
    assert torch.all(ts[1:] < ts[:-1])
    torch.testing.assert_close(ts[:3], torch.tensor([1.0, 0.98, 0.96], dtype=torch.float64))
    assert ddim_timesteps(50, 1000, "leading")[0].item() < 1.0  # the flaw Lin et al. point out


def _oracle(z0: torch.Tensor, schedule: NoiseSchedule):
    """A perfect denoiser for a single known x_0: v̂ = v(x_0, ε(z_t))."""

    def model_fn(z_t, t, **kwargs):
        g = schedule.gamma(t).view(-1, 1, 1, 1, 1)
        eps = (z_t - g.sqrt() * z0) / (1 - g).sqrt()
        return v_target(z0, eps, schedule.gamma(t))

    return model_fn


def test_one_ddim_step_with_an_oracle_lands_on_x0():
    sched = NoiseSchedule()
    z0 = torch.randn(2, 3, 4, 4, 4)
    z_t = torch.randn_like(z0)  # t = 1 under zero SNR: z_t = ε, the true v is -x_0
    t, s = torch.ones(2), torch.zeros(2)
    z_s, x0 = ddim_step(z_t, _oracle(z0, sched)(z_t, t), sched.gamma(t), sched.gamma(s))
    torch.testing.assert_close(x0, z0)
    torch.testing.assert_close(z_s, z0)
    # a mid-way step t=0.5 -> s=0.3 keeps the oracle's x_0 and moves z along the DDIM path
    z_mid = sched.gamma(torch.tensor(0.5)).sqrt() * z0 + (1 - sched.gamma(torch.tensor(0.5))).sqrt() * z_t
    _, x0_mid = ddim_step(z_mid, _oracle(z0, sched)(z_mid, t / 2), sched.gamma(t / 2), sched.gamma(0.3 * t))
    torch.testing.assert_close(x0_mid, z0, atol=1e-5, rtol=1e-5)


def test_full_ddim_with_an_oracle_recovers_x0_for_any_eta():
    sched = NoiseSchedule()
    z0 = torch.randn(2, 3, 4, 4, 4)
    for eta in (0.0, 1.0):
        gen = torch.Generator().manual_seed(3)
        x = torch.randn(z0.shape, generator=gen)
        ts = ddim_timesteps(10, 1000)
        # at t=1 the oracle needs ε = z_t, which holds for any x_0 under zero SNR
        out = sample_ddim(_oracle(z0, sched), x, ts, schedule=sched, eta=eta, generator=gen, disable=True)
        torch.testing.assert_close(out, z0, atol=1e-4, rtol=1e-4)


def test_self_conditioning_feeds_the_previous_estimate_forward():
    sched = NoiseSchedule()
    seen = []

    def model_fn(z_t, t, self_cond=None):
        seen.append(self_cond.clone())
        return torch.full_like(z_t, 0.5)

    x = torch.randn(1, 2, 3, 4, 4)
    sample_ddim(model_fn, x, ddim_timesteps(3, 1000), schedule=sched, self_condition=True, disable=True)
    assert torch.count_nonzero(seen[0]) == 0  # first step: zeros
    torch.testing.assert_close(seen[1], torch.full_like(x, -0.5))  # γ(1) = 0 -> ẑ_0 = -v̂


def test_guidance_combines_conditional_and_unconditional_predictions():
    def model_fn(x, t, class_labels=None):
        return class_labels.float().view(-1, 1, 1, 1, 1).expand_as(x).clone()

    x, t = torch.zeros(2, 1, 1, 2, 2), torch.ones(2)
    guided = classifier_free_guidance(model_fn, 3.0, {"class_labels": torch.tensor([10, 10])})
    out = guided(x, t, class_labels=torch.tensor([2, 4]))
    torch.testing.assert_close(
        out[:, 0, 0, 0, 0], torch.tensor([10 + 3 * (2 - 10), 10 + 3 * (4 - 10)]).float()
    )
    assert classifier_free_guidance(model_fn, 1.0, {}) is model_fn


def _stage(**kw) -> StageSampler:
    model = TinyDenoiser(4, num_classes=3, frame_condition=True).eval()
    cfg = DiffusionConfig(sample_steps=4, **kw)
    return StageSampler(model, cfg, (3, 4, 4, 4), LatentNormalizer(4), num_classes=3, frame_condition=True)


def test_sampling_with_the_same_seed_is_identical():
    stage, labels = _stage(eta=1.0), torch.tensor([0, 2])
    a = stage.sample(2, labels=labels, generator=torch.Generator().manual_seed(7))
    b = stage.sample(2, labels=labels, generator=torch.Generator().manual_seed(7))
    c = stage.sample(2, labels=labels, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_context_frames_condition_and_are_kept():
    stage = _stage()
    ctx = torch.randn(2, 2, 4, 4, 4)
    out = stage.sample(
        2, labels=torch.tensor([0, 1]), context=ctx, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(out[:, :2], ctx)
    fc = stage.model.calls[-1]["frame_cond"]
    assert fc.shape == (2, 3, 5, 4, 4)
    torch.testing.assert_close(fc[:, :, 4, 0, 0], torch.tensor([[1.0, 1.0, 0.0]] * 2))


def test_autoregressive_chunks_condition_on_the_previous_chunk_end():
    contexts = []

    def chunk(ctx):
        contexts.append(ctx)
        return torch.arange(5.0).view(1, 5, 1, 1, 1) + 10 * len(contexts)

    chunks = sample_autoregressive(chunk, 3, 2)
    assert len(chunks) == 3 and contexts[0] is None
    torch.testing.assert_close(contexts[1].flatten(), torch.tensor([13.0, 14.0]))
    torch.testing.assert_close(contexts[2].flatten(), torch.tensor([23.0, 24.0]))


def test_context_frames_of_z_t_follow_the_training_noising_not_ddim():
    """§4.4: the loss never trains v̂ on context frames, so their z_t must be q_sample(context), as in training."""
    sched, ctx = NoiseSchedule(), torch.randn(2, 2, 4, 4, 4)
    seen = []

    class GarbageOnContext(TinyDenoiser):
        def forward(self, z_t, t, **kwargs):
            seen.append((z_t.clone(), t.clone()))
            v = super().forward(z_t, t, **kwargs)
            v[:, :2] = 100.0  # untrained frames: anything
            return v

    stage = _stage()
    stage.model = GarbageOnContext(4, num_classes=3, frame_condition=True).eval()
    stage.sample(2, labels=torch.tensor([0, 1]), context=ctx, generator=torch.Generator().manual_seed(0))
    eps_ctx = seen[0][0][:, :2]  # t = 1, γ = 0: z_t is the initial noise
    assert seen[0][1][0].item() == 1.0
    for z_t, t in seen[1:]:
        g = sched.gamma(t).view(-1, 1, 1, 1, 1)
        torch.testing.assert_close(z_t[:, :2], g.sqrt() * ctx + (1 - g).sqrt() * eps_ctx)


def test_an_image_model_samples_with_the_identity_attention_it_was_trained_with():
    """ImageNet items are ``is_image`` in training (ST layers: identity attention, §4.2); sampling must match."""
    from pathlib import Path

    from walt_bench.diffusion.sample import stage_sampler
    from walt_bench.diffusion.train import build_model
    from walt_bench.spec import load_spec

    root = Path(__file__).resolve().parents[1] / "experiments"
    tiny = ["model.size=tiny", "data.num_classes=3", "diffusion.sample_steps=2"]
    seen = []
    for path, extra in (
        ("tables/table2-imagenet-L.yaml", ["data.height=32", "data.width=32"]),
        ("smoke/default.yaml", []),
    ):
        spec = load_spec(root / path, tiny + extra)
        model = build_model(spec).eval()
        model.denoiser.register_forward_pre_hook(
            lambda m, a, kw: seen.append(kw.get("is_image")), with_kwargs=True
        )
        stage_sampler(spec, model).sample(2, labels=torch.tensor([0, 1]))
    image_calls, video_calls = seen[:2], seen[2:]
    assert all(c is not None and c.dtype == torch.bool and bool(c.all()) for c in image_calls)
    assert all(c is None for c in video_calls) and len(video_calls) == 2


def test_stage_sampler_returns_latents_in_tokenizer_space():
    """Sampling runs in normalised space (§5.3 latent norm); the decoder needs the de-normalised latents."""
    sched = NoiseSchedule()
    x0_norm = torch.randn(2, 3, 4, 4, 4)
    norm = LatentNormalizer(4)
    norm.set_stats(torch.tensor([3.0, -1.0, 0.5, 2.0]), torch.tensor([2.0, 0.5, 4.0, 1.5]))
    oracle = _oracle(x0_norm, sched)

    class Oracle(torch.nn.Module):
        def forward(self, z_t, t, **kwargs):
            return oracle(z_t, t)

    sampler = StageSampler(
        Oracle(), DiffusionConfig(sample_steps=10), (3, 4, 4, 4), norm, self_condition=False
    )
    out = sampler.sample(2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, norm.denormalize(x0_norm), atol=1e-4, rtol=1e-4)
