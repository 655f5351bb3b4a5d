"""Spec section ``diffusion``: schedule, objective, conditioning and sampler (§3, §4.3-4.5, Table 8).

Defaults are the paper's (Table 8, UCF-101 column); where the paper is silent the description says so
and gives the reason for our choice.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from walt_bench.config import NonNegativeInt, PositiveInt, Probability, Section


class DiffusionConfig(Section):
    # --- schedule (§3, Table 8, Table 3e) -------------------------------------------------------------
    num_timesteps: PositiveInt = Field(1000, description="Diffusion steps N (Table 8: 1000).")
    beta_start: float = Field(1e-4, gt=0, lt=1, description="Linear beta schedule start (Table 8).")
    beta_end: float = Field(0.02, gt=0, lt=1, description="Linear beta schedule end (Table 8).")
    zero_terminal_snr: bool = Field(
        True,
        description="Rescale the schedule to zero terminal SNR (Lin et al. 2023, Algorithm 1; Table 3e).",
    )
    timestep_sampling: Literal["discrete", "continuous"] = Field(
        "discrete",
        description="Training t: 'discrete' draws i ~ U{1..N} and uses t = i/N (the table's own values); "
        "'continuous' draws t ~ U(0, 1) (Eq. 2) with gamma(t) interpolated linearly in the table. "
        "Paper writes U(0,1) but uses a 1000-step discrete schedule; we choose 'discrete'.",
    )
    # --- objective ---------------------------------------------------------------------------------------
    latent_norm: bool = Field(
        True,
        description="Normalise latents per channel with the cache's mean/std before diffusion (Table 3e).",
    )
    latent_source: Literal["cache", "encode"] = Field(
        "cache",
        description="Where the trainer's latents come from: 'cache' reads the latent cache written by `walt-bench "
        "tokenizer encode` (its per-channel stats normalise the latents); 'encode' encodes clips on the fly with the "
        "frozen tokenizer (random clips every epoch; needed for joint image-video training and super-resolution "
        "stages, whose inputs are not in a cache).",
    )
    norm_stats_batches: PositiveInt = Field(
        8,
        description="latent_source='encode': batches encoded to estimate the per-channel latent mean/std. "
        "Paper is silent; 8 batches give a stable estimate at negligible cost.",
    )
    p_sc: Probability = Field(
        0.9, description="Self-conditioning rate p_sc, per training example (§4.3, Table 3c)."
    )
    p_fp: Probability = Field(
        0.0,
        description="Frame-prediction rate p_fp, per video example (§4.4). Paper is silent on the value; 0 for "
        "class-conditional UCF-101/ImageNet, set in the K600 and long-video specs.",
    )
    fp_frames: list[PositiveInt] = Field(
        default_factory=lambda: [1, 2],
        description="Choices (uniform) for the number of clean conditioning latent frames when frame prediction "
        "is drawn: 1 = image-to-video, 2 = video prediction (§4.4; K600's 5 frames = 2 latent frames).",
    )
    cond_drop_prob: Probability = Field(
        0.0,
        description="Classifier-free-guidance conditioning dropout: class label -> null class and c_fp -> zeros. "
        "Table 8 uses no guidance for ImageNet, UCF-101 and K600, so 0 (training never sees the null class); "
        "the rate is unstated for the guided text-to-video stages: 0.1 (Ho & Salimans, DiT) is the usual choice.",
    )
    # --- sampler (§5.1, Table 8) ------------------------------------------------------------------------
    sample_steps: PositiveInt = Field(50, description="DDIM steps (Table 8: 50).")
    timestep_spacing: Literal["trailing", "linspace", "leading"] = Field(
        "trailing",
        description="How the DDIM steps pick training timesteps. Paper is silent; 'trailing' (Lin et al. 2023) so "
        "sampling starts at t=1 where zero terminal SNR makes gamma=0.",
    )
    eta: float = Field(
        0.0, ge=0.0, le=1.0, description="DDIM eta (Song et al. Eq. 16); 0 = deterministic DDIM."
    )
    guidance_scale: float = Field(
        1.0,
        ge=0,
        description="Classifier-free guidance scale w; 1 = none (Table 8: no CFG for UCF/K600/ImageNet).",
    )
    sample_context_frames: NonNegativeInt = Field(
        0,
        description="Sampling: clean latent frames of real data to condition on (frame prediction). K600 protocol: "
        "2 (5 frames -> 2 latent frames with f_t=4). 0 = generate from noise.",
    )
    sample_chunks: PositiveInt = Field(
        1,
        description="Autoregressive long-video sampling: chunks to generate, each conditioned on the last one.",
    )
    ar_context_frames: PositiveInt = Field(
        2,
        description="Autoregressive sampling: latent frames from the previous chunk's end used as c_fp (appendix: 2).",
    )
    # --- super-resolution cascade (§4.5) --------------------------------------------------------------
    t_max_noise: Probability = Field(
        0.5,
        description="SR noise-conditioning augmentation: t_sr ~ U(0, t_max_noise) at training (§4.5). Paper is "
        "silent; 0.5 keeps the low-res signal dominant (gamma(0.5) ~ 0.1-0.3) while covering base-stage artifacts.",
    )
    sample_noise_aug: Probability = Field(
        0.1,
        description="SR sampling: fixed t_sr applied to the previous stage's latent. Paper is silent; a small level "
        "as in cascaded diffusion (Ho et al. 2021) and Imagen.",
    )

    @model_validator(mode="after")
    def _check(self) -> DiffusionConfig:
        problems = []
        if self.beta_end <= self.beta_start:
            problems.append(f"beta_end={self.beta_end} must exceed beta_start={self.beta_start}")
        if self.sample_steps > self.num_timesteps:
            problems.append(f"sample_steps={self.sample_steps} exceeds num_timesteps={self.num_timesteps}")
        if self.sample_noise_aug > self.t_max_noise:
            problems.append(
                f"sample_noise_aug={self.sample_noise_aug} exceeds t_max_noise={self.t_max_noise}: the SR stage never "
                "saw that noise level in training"
            )
        if not self.fp_frames:
            problems.append("fp_frames is empty; give at least one choice, e.g. [1, 2]")
        if problems:
            raise ValueError("; ".join(problems))
        return self
