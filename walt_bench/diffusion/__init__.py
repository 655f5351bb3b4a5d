"""walt_bench.diffusion: the W.A.L.T diffusion process around the denoiser (§3, §4.3-4.5, Table 8).

    schedule.NoiseSchedule          γ(t): linear β 1e-4 → 0.02 over 1000 steps, zero terminal SNR (Lin et al.)
    objective                       Eq. 1 q_sample, v target, x̂0/ε̂ from v̂, Eq. 2 v_loss, LatentNormalizer
    conditioning                    self-conditioning masks, c_fp = concat(m ∘ z0, m), CFG label dropout
    step.DiffusionObjective         one training loss (self-cond, frame prediction, image stacks, SR noise aug)
    sampler                         ddim_timesteps, ddim_step, sample_ddim, classifier_free_guidance,
                                    sample_autoregressive (pure functions, k-diffusion style)
    generate.StageSampler           sample one trained stage (base or SR) in tokenizer-space latents
    cascade                         t_sr ~ U(0, t_max_noise), noise_augment, run_cascade (base -> SR1 -> SR2)
    train.run_train / sample.run_sample   the `walt-bench train` and `walt-bench sample` commands

Submodules import torch; this package file does not, so the CLI starts fast.
"""
