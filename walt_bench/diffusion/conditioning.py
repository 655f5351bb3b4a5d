"""Conditioning inputs built at training and sampling time (§4.3-4.4).

- Self-conditioning (§4.3, Chen et al. "Analog Bits"): a per-example Bernoulli(p_sc) mask decides which
  examples get a first, gradient-free estimate ẑ_0 as the ``self_cond`` input (zeros otherwise).
- Frame prediction (§4.4): c_fp = concat(m ∘ z_0, m) with a binary mask m over latent frames marking the
  first k *clean* context latents (the appendix: the paper's "m ∘ z_t" means the clean context). k = 1 is
  image-to-video, k = 2 video prediction (K600: 5 frames -> latent frames {1}, {2-5} with f_t = 4).
- Classifier-free guidance dropout: class label -> the null class ``num_classes`` and c_fp -> zeros.
"""

from __future__ import annotations

import torch


def bernoulli(batch: int, p: float, *, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B,) bool, each True with probability p."""
    if p <= 0.0:
        return torch.zeros(batch, dtype=torch.bool, device=device)
    if p >= 1.0:
        return torch.ones(batch, dtype=torch.bool, device=device)
    return torch.rand(batch, device=device, generator=generator) < p


def draw_context_frames(
    batch: int,
    num_latent_frames: int,
    p_fp: float,
    choices: list[int],
    *,
    is_image: torch.Tensor | None = None,
    device=None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Number of clean conditioning latent frames per example, (B,) long; 0 = no frame prediction.

    With probability p_fp a video example draws k uniformly from ``choices`` (§4.4: 1 or 2). Image stacks
    and choices that would leave no frame to predict (k >= T) never condition.
    """
    valid = [k for k in choices if k < num_latent_frames]
    k = torch.zeros(batch, dtype=torch.long, device=device)
    if not valid or p_fp <= 0.0:
        return k
    use = bernoulli(batch, p_fp, device=device, generator=generator)
    if is_image is not None:
        use = use & ~is_image.to(device=device, dtype=torch.bool)
    pick = torch.randint(0, len(valid), (batch,), device=device, generator=generator)
    drawn = torch.tensor(valid, dtype=torch.long, device=device)[pick]
    return torch.where(use, drawn, k)


def context_mask(num_context: torch.Tensor, num_latent_frames: int) -> torch.Tensor:
    """m_fp (§4.4): (B,) counts -> (B, T) float mask, 1 on the first k latent frames."""
    frames = torch.arange(num_latent_frames, device=num_context.device)
    return (frames[None, :] < num_context[:, None]).float()


def frame_condition(z0: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """c_fp = concat(m ∘ z_0, m) along channels (§4.4): (B, T, c, h, w), (B, T) -> (B, T, c + 1, h, w)."""
    b, t, _, h, w = z0.shape
    m = mask.to(z0.dtype).view(b, t, 1, 1, 1)
    return torch.cat([z0 * m, m.expand(b, t, 1, h, w)], dim=2)


def context_frame_condition(context: torch.Tensor, num_latent_frames: int) -> torch.Tensor:
    """c_fp for sampling from k known clean latents (B, k, c, h, w) placed at frames 0..k-1 of a T-frame clip."""
    b, k, c, h, w = context.shape
    z0 = context.new_zeros(b, num_latent_frames, c, h, w)
    z0[:, :k] = context
    mask = context_mask(torch.full((b,), k, device=context.device), num_latent_frames)
    return frame_condition(z0, mask)


def drop_labels(labels: torch.Tensor, drop: torch.Tensor, null_class: int) -> torch.Tensor:
    """CFG dropout: labels (B,) or (B, T) -> the null class where ``drop`` (B,) is True."""
    d = drop.view(-1, *([1] * (labels.dim() - 1)))
    return torch.where(d, torch.full_like(labels, null_class), labels)


def null_labels(labels: torch.Tensor, null_class: int) -> torch.Tensor:
    """Unconditional labels of the same shape (for guidance)."""
    return torch.full_like(labels, null_class)
