"""Spec section ``tokenizer``: the causal 3D CNN autoencoder of §4.1 (MAGVIT-v2 style, continuous latents).

The architecture fields follow Table 8 (UCF-101 column); the loss fields follow MAGVIT / MAGVIT-v2, which the
paper defers to ("adversarial and perceptual losses", §3). ``tokenizer.train`` holds the tokenizer's own
optimisation settings (Table 8, first stage: batch 256, cosine schedule, Adam).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from walt_bench.config import NonNegativeInt, PositiveFloat, PositiveInt, Section
from walt_bench.engine.config import TrainConfig


def _tokenizer_train_defaults() -> TrainConfig:
    """Table 8, first stage: batch 256, cosine schedule, Adam; UCF-101 trains 2000 epochs (~75k steps at batch 256
    on fold 1's 9,537 videos). Paper is silent on the rest: lr 1e-4 as MAGVIT-v2's tokenizer, no EMA."""
    return TrainConfig(
        steps=75000, batch_size=256, optimizer="adam", lr=1e-4, lr_schedule="cosine", ema=False
    )


def geometry_problems(
    f_s: int, f_t: int, channels: int, channel_multipliers: list[int], num_groups: int
) -> list[str]:
    """Why ``f_s``/``f_t`` do not fit the levels (``len(channel_multipliers) - 1`` downsamplings), if they don't.

    ``L`` levels give ``L - 1`` spatial downsamplings, so ``f_s = 2**(L-1)``; time is downsampled on the last
    ``log2 f_t`` of them, so ``f_t`` is a power of two ``<= 2**(L-1)``. GroupNorm groups must divide every width.
    """
    n_down = len(channel_multipliers) - 1
    problems = []
    if f_s != 2**n_down:
        hint = f" (or give {f_s.bit_length()} multipliers)" if f_s & (f_s - 1) == 0 else ""
        problems.append(
            f"tokenizer.f_s={f_s} but channel_multipliers={list(channel_multipliers)} has {n_down + 1} levels, "
            f"i.e. {n_down} spatial downsamplings: f_s must be {2**n_down}{hint}"
        )
    if f_t & (f_t - 1) or f_t > 2**n_down:
        choices = ", ".join(str(2**i) for i in range(n_down + 1))
        problems.append(
            f"tokenizer.f_t={f_t} must be one of {choices}: time is halved on at most the {n_down} "
            f"downsampling levels of channel_multipliers={list(channel_multipliers)}"
        )
    bad = [channels * m for m in channel_multipliers if (channels * m) % num_groups]
    if bad:
        problems.append(f"tokenizer.num_groups={num_groups} does not divide the level widths {bad}")
    return problems


class TokenizerConfig(Section):
    # --- geometry (Table 8) -------------------------------------------------------------------------------
    f_s: PositiveInt = Field(
        8,
        description="Spatial compression H/h = W/w (Table 8: 8). Must equal 2**(len(channel_multipliers)-1).",
    )
    f_t: PositiveInt = Field(
        4,
        description="Temporal compression T/t of the frames after the first (Table 8: 4). A power of two "
        "2**k with k <= len(channel_multipliers)-1; time is downsampled on the last k levels (MAGVIT-v2: "
        "temporal_downsample False, True, True).",
    )
    latent_channels: PositiveInt = Field(8, description="Latent channels c (Table 3f: 4/8/16/32; default 8).")
    channels: PositiveInt = Field(128, description="Base channel count (Table 8: 128).")
    channel_multipliers: list[PositiveInt] = Field(
        default_factory=lambda: [1, 2, 2, 4],
        description="Per-level channel multipliers; the number of levels is their count (Table 8: 1,2,2,4; "
        "ImageNet 1,1,2,4).",
    )
    num_res_blocks: PositiveInt = Field(
        4, description="Residual blocks per level (paper is silent; MAGVIT-v2's video tokenizer uses 4)."
    )
    num_groups: PositiveInt = Field(
        32,
        description="GroupNorm groups (paper is silent; 32 as in MAGVIT-v2). Must divide every level's width.",
    )
    causal_padding: Literal["replicate", "zeros"] = Field(
        "replicate",
        description="How causal convolutions fill the k_t-1 frames before the first one (never future frames). "
        "Paper is silent; we choose 'replicate' (repeat the first frame) because an image then looks like a "
        "static video to every layer, and no artificial black frame enters the first latent.",
    )
    latent_kind: Literal["plain", "kl"] = Field(
        "plain",
        description="'plain': the encoder output is the latent; 'kl': a diagonal Gaussian posterior with a "
        "small KL term (kl_weight), encode() returns its mean. Default 'plain' because the paper says the "
        "latent is 'real-valued and quantization-free' and mentions no KL term; the latent scale is handled "
        "by per-channel normalisation before the transformer (§5.3 'latent norm').",
    )
    kl_weight: float = Field(
        1e-6,
        ge=0.0,
        description="Weight of the KL term when latent_kind='kl' (paper is silent; 1e-6 as in LDM).",
    )
    # --- losses (MAGVIT / MAGVIT-v2 defaults; the paper defers to them) -------------------------------------
    recon_loss: Literal["l1", "l2"] = Field(
        "l2", description="Pixel reconstruction loss (paper is silent; MAGVIT uses L2)."
    )
    recon_weight: PositiveFloat = Field(1.0, description="Weight of the reconstruction loss (MAGVIT: 1.0).")
    perceptual_weight: float = Field(
        0.1, ge=0.0, description="Weight of the perceptual loss (MAGVIT-v2: 0.1). 0 disables it."
    )
    perceptual_network: str = Field(
        "vgg16",
        description="Feature network of the perceptual loss, a name in walt_bench.tokenizer.losses."
        "FEATURE_NETWORKS ('vgg16': torchvision's VGG-16 'features' layout, LPIPS-style layers).",
    )
    perceptual_weights: str | None = Field(
        None,
        description="Path to the feature network's state dict (.pt/.pth or .safetensors). Nothing is "
        "downloaded: when absent the perceptual term is off and a notice is logged.",
    )
    adversarial_weight: float = Field(
        0.1, ge=0.0, description="Generator adversarial loss weight (MAGVIT-v2: 0.1). 0 disables the GAN."
    )
    discriminator_weight: PositiveFloat = Field(
        1.0, description="Weight of the discriminator's own loss (MAGVIT: 1.0)."
    )
    discriminator_start_step: NonNegativeInt = Field(
        20000,
        description="Step at which the discriminator and the adversarial term switch on. MAGVIT-v2 does not "
        "publish it; we choose 20000 so the autoencoder first learns to reconstruct (LDM uses 50001).",
    )
    discriminator_channels: PositiveInt = Field(
        128, description="Base width of the 3D StyleGAN discriminator (MAGVIT: 128 filters)."
    )
    discriminator_multipliers: list[PositiveInt] = Field(
        default_factory=lambda: [2, 4, 4, 4, 4],
        description="Per-block width multipliers of the discriminator; one blur-pool downsampling per block "
        "(MAGVIT: 2,4,4,4,4 at 128x128; 2,4,4,4 at 64x64).",
    )
    lecam_weight: float = Field(
        0.001, ge=0.0, description="LeCAM regularisation weight (MAGVIT-v2: 0.001). 0 disables it."
    )
    lecam_ema_decay: float = Field(
        0.999, gt=0.0, lt=1.0, description="EMA decay of the LeCAM anchors (MAGVIT: 0.999)."
    )
    r1_weight: float = Field(
        0.0,
        ge=0.0,
        description="R1 gradient penalty weight on real clips (MAGVIT uses 10). Default 0 (off) because the "
        "double backward pass roughly doubles the discriminator cost; LeCAM keeps training stable.",
    )
    # --- files and the tokenizer's own training ------------------------------------------------------------
    checkpoint: str | None = Field(
        None, description="Trained tokenizer checkpoint used by encode/eval/diffusion."
    )
    cache_dir: str | None = Field(
        None, description="Latent cache written by `tokenizer encode` and read by `train`."
    )
    cache_shard_size: PositiveInt = Field(
        1024, description="Clips per latent-cache shard (one memory-mapped .npy file each)."
    )
    eval_split: str = Field("test", description="Dataset split used by `tokenizer eval` (PSNR, SSIM, rFVD).")
    eval_clips: PositiveInt = Field(
        1000, description="Clips reconstructed by `tokenizer eval` (paper is silent; 1000 for PSNR/SSIM)."
    )
    train: TrainConfig = Field(
        default_factory=_tokenizer_train_defaults,
        description="The tokenizer's own optimisation settings, used by both of its parts (autoencoder and "
        "discriminator). Table 8 first stage: batch 256, cosine, Adam; UCF-101 2000 epochs (~75k steps). Paper is "
        "silent on the rest; we choose lr 1e-4 (MAGVIT-v2) and no EMA; other fields as in `train`.",
    )

    @model_validator(mode="before")
    @classmethod
    def _train_defaults_under_partial_section(cls, data):
        """A partial ``tokenizer.train`` (``{steps: 10}``) keeps the tokenizer's own defaults (Adam, lr 1e-4, no
        EMA) for every field it does not name, not the diffusion trainer's (AdamW, 5e-4, EMA)."""
        if isinstance(data, dict) and isinstance(data.get("train"), dict):
            data = {**data, "train": {**_tokenizer_train_defaults().model_dump(), **data["train"]}}
        return data

    @model_validator(mode="after")
    def _check_geometry(self) -> TokenizerConfig:
        problems = geometry_problems(
            self.f_s, self.f_t, self.channels, self.channel_multipliers, self.num_groups
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self
