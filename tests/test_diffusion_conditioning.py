"""Frame-prediction draws (§4.4), joint image-video encoding (§4.1-4.2) and the super-resolution cascade (§4.5)."""

from __future__ import annotations

import torch
from test_diffusion_standin import TinyDenoiser

from walt_bench.diffusion import conditioning as cond
from walt_bench.diffusion.cascade import downsample_video, noise_augment, run_cascade, sample_t_sr
from walt_bench.diffusion.config import DiffusionConfig
from walt_bench.diffusion.generate import StageSampler
from walt_bench.diffusion.objective import LatentNormalizer
from walt_bench.diffusion.schedule import NoiseSchedule


def test_context_draws_use_the_choices_and_skip_images_and_whole_clips():
    g = torch.Generator().manual_seed(0)
    is_image = torch.arange(1000) % 4 == 0
    k = cond.draw_context_frames(1000, 5, 0.5, [1, 2], is_image=is_image, generator=g)
    assert set(k.unique().tolist()) == {0, 1, 2}
    assert torch.all(k[is_image] == 0)
    assert 0.4 < (k[~is_image] > 0).float().mean() < 0.6
    # a 2-frame clip cannot be conditioned on 2 frames: nothing left to predict
    assert torch.all(cond.draw_context_frames(100, 2, 1.0, [2], generator=g) == 0)


def test_k600_protocol_five_frames_are_two_latent_frames():
    from walt_bench.tokenizer.config import TokenizerConfig
    from walt_bench.tokenizer.model import CausalAutoencoder

    tok = CausalAutoencoder(TokenizerConfig(channels=8, num_groups=4, num_res_blocks=1)).eval()
    with torch.no_grad():
        z = tok.encode(torch.rand(1, 5, 3, 16, 16) * 2 - 1)  # frame 1 | frames 2-5
    assert z.shape[1] == 2
    c_fp = cond.context_frame_condition(z, 5)
    assert c_fp.shape == (1, 5, 9, 2, 2)
    assert c_fp[0, :, 8, 0, 0].tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]


def test_image_stacks_are_encoded_image_by_image():
    from walt_bench.diffusion.train import OnTheFlyEncoder
    from walt_bench.tokenizer.config import TokenizerConfig
    from walt_bench.tokenizer.model import CausalAutoencoder

    tok = CausalAutoencoder(TokenizerConfig(channels=8, num_groups=4, num_res_blocks=1)).eval()
    enc = OnTheFlyEncoder(tok, latent_frames=2)
    video = torch.rand(2, 5, 3, 16, 16) * 2 - 1
    z = enc(video, torch.tensor([False, True]))
    with torch.no_grad():
        torch.testing.assert_close(z[0], tok.encode(video[:1])[0])
        for j in range(2):  # image j of the stack = a 1-frame video on its own
            torch.testing.assert_close(z[1, j], tok.encode(video[1:2, j : j + 1])[0, 0])


def test_noise_augmentation_follows_gamma_of_t_sr():
    sched = NoiseSchedule()
    lowres = torch.randn(3, 2, 4, 2, 2)
    t_sr = sample_t_sr(10000, 0.3, generator=torch.Generator().manual_seed(0))
    assert 0 <= t_sr.min() and t_sr.max() <= 0.3 and abs(t_sr.mean().item() - 0.15) < 0.01
    assert torch.equal(noise_augment(lowres, torch.zeros(3), sched), lowres)  # t_sr = 0: clean
    noisy = noise_augment(lowres, torch.ones(3), sched)
    assert not torch.allclose(noisy, lowres)
    assert downsample_video(torch.ones(1, 2, 3, 8, 8)).shape == (1, 2, 3, 4, 4)


def test_cascade_feeds_each_stage_the_previous_latents():
    cfg = DiffusionConfig(sample_steps=2, sample_noise_aug=0.1)
    base = StageSampler(TinyDenoiser(4).eval(), cfg, (2, 4, 4, 4), LatentNormalizer(4))
    sr_model = TinyDenoiser(4, lowres_condition=True).eval()
    sr = StageSampler(sr_model, cfg, (2, 4, 8, 8), LatentNormalizer(4), lowres_condition=True)
    g = torch.Generator().manual_seed(0)
    outs = run_cascade(lambda: base.sample(2, generator=g), [lambda z: sr.sample(2, lowres=z, generator=g)])
    assert [o.shape[-1] for o in outs] == [4, 8]
    fed = sr_model.calls[-1]["lowres"]
    assert fed.shape == (2, 2, 4, 4, 4) and not torch.equal(fed, outs[0])  # noised at sample_noise_aug
    g_sr = NoiseSchedule().gamma(torch.tensor(0.1))
    resid = fed - g_sr.sqrt() * outs[0]  # Eq. 1 at t_sr = 0.1: the rest is sqrt(1 - γ) ε
    assert abs(resid.std().item() - (1 - g_sr).sqrt().item()) < 0.1
    assert torch.allclose(sr_model.calls[-1]["noise_aug"], torch.full((2,), 0.1))


def test_long_video_chunks_are_reencoded_and_stitched():
    from walt_bench.diffusion.sample import generate_batch
    from walt_bench.tokenizer.config import TokenizerConfig
    from walt_bench.tokenizer.model import CausalAutoencoder

    tok = CausalAutoencoder(
        TokenizerConfig(channels=8, num_groups=4, num_res_blocks=1, latent_channels=4)
    ).eval()
    model = TinyDenoiser(4, frame_condition=True).eval()
    base = StageSampler(
        model, DiffusionConfig(sample_steps=2), (5, 4, 2, 2), LatentNormalizer(4), frame_condition=True
    )
    g = torch.Generator().manual_seed(0)
    video = generate_batch(
        base, [], tok, 2, labels=None, context=None, generator=g, device="cpu", num_chunks=2
    )
    assert video.shape == (
        2,
        17 + 12,
        3,
        16,
        16,
    )  # the second chunk's 5 re-encoded context frames are dropped
    second_chunk_fc = model.calls[-1]["frame_cond"]
    assert second_chunk_fc[0, :, 4, 0, 0].tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
