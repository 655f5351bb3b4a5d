"""Samplers as pure functions (k-diffusion style): DDIM with v-prediction, classifier-free guidance,
autoregressive chunking.

One signature: ``sample_ddim(model_fn, x, timesteps, extra_args, callback, disable, *, schedule, ...)`` where
``model_fn(z_t, t, **extra_args) -> v̂`` and ``timesteps`` is a descending tensor of continuous times from
:func:`ddim_timesteps` that ends at 0. Randomness (the initial noise, η > 0 noise) comes only from an explicit
``torch.Generator``, so a seed fixes the samples. A *list* of generators, one per sample, draws each sample's
noise from its own generator (:func:`randn`): a sample then depends on its own seed alone, not on which other
samples share its batch or process (``walt-bench sample`` seeds sample i with ``derive_seed(seed, i)``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from walt_bench.diffusion.objective import eps_from_v, q_sample, x0_from_v

Generators = torch.Generator | Sequence[torch.Generator] | None


def randn(shape, *, generator: Generators = None, device=None, dtype=None) -> torch.Tensor:
    """Standard normal noise of ``shape`` (B, ...). ``generator`` a sequence of B generators: row b is drawn
    from generator b alone (shape ``shape[1:]``), so it is the same whatever the batch it is drawn in."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)
    if len(generator) != shape[0]:
        raise ValueError(f"{len(generator)} per-sample generators for a batch of {shape[0]}")
    return torch.stack(
        [torch.randn(tuple(shape[1:]), generator=g, device=device, dtype=dtype) for g in generator]
    )


def ddim_timesteps(num_steps: int, num_train_steps: int = 1000, spacing: str = "trailing") -> torch.Tensor:
    """Continuous times t_S > ... > t_1 > 0 of the DDIM grid, plus the final 0: (S + 1,) float64.

    ``trailing`` (Lin et al. 2023, Table 2): i = round(N - k N / S), k = 0..S-1, so the first step is t = 1
    (pure noise under zero terminal SNR). ``linspace``: i = round(linspace(1, N, S)). ``leading`` (DDIM's
    original): i = k (N // S) + 1. Each i is a training step, t = i / N.
    """
    n, s = num_train_steps, num_steps
    if spacing == "trailing":
        idx = torch.round(torch.arange(n, 0, -n / s, dtype=torch.float64))[:s]
    elif spacing == "linspace":
        idx = torch.round(torch.linspace(1, n, s, dtype=torch.float64)).flip(0)
    elif spacing == "leading":
        idx = (torch.arange(s, dtype=torch.float64) * (n // s) + 1).flip(0)
    else:
        raise ValueError(f"timestep spacing {spacing!r}: expected trailing, linspace or leading")
    return torch.cat([idx / n, torch.zeros(1, dtype=torch.float64)])


def ddim_step(
    z_t: torch.Tensor,
    v_hat: torch.Tensor,
    gamma_t: torch.Tensor,
    gamma_s: torch.Tensor,
    *,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM update t -> s < t (Song et al. 2021, Eq. 12, with σ from Eq. 16), in v-parameterisation.

        ẑ_0 = sqrt(γ_t) z_t - sqrt(1 - γ_t) v̂,   ε̂ = sqrt(1 - γ_t) z_t + sqrt(γ_t) v̂
        σ   = η sqrt((1 - γ_s) / (1 - γ_t)) sqrt(1 - γ_t / γ_s)
        z_s = sqrt(γ_s) ẑ_0 + sqrt(1 - γ_s - σ²) ε̂ + σ ε

    ``gamma_t``, ``gamma_s`` are 0-d or (B,) tensors. Returns (z_s, ẑ_0).
    """
    x0 = x0_from_v(z_t, v_hat, gamma_t)
    eps = eps_from_v(z_t, v_hat, gamma_t)
    g_s = gamma_s.to(z_t.dtype).view(-1, *([1] * (z_t.dim() - 1))) if gamma_s.dim() else gamma_s.to(z_t.dtype)
    g_t = gamma_t.to(z_t.dtype).view(-1, *([1] * (z_t.dim() - 1))) if gamma_t.dim() else gamma_t.to(z_t.dtype)
    sigma = torch.zeros_like(g_s)
    if eta > 0:
        ratio = torch.where(g_s > 0, g_t / g_s.clamp(min=1e-12), torch.ones_like(g_s))
        sigma = eta * ((1 - g_s) / (1 - g_t).clamp(min=1e-12)).sqrt() * (1 - ratio).clamp(min=0).sqrt()
    z_s = g_s.sqrt() * x0 + (1 - g_s - sigma**2).clamp(min=0).sqrt() * eps
    if eta > 0 and noise is not None:
        z_s = z_s + sigma * noise
    return z_s, x0


@torch.no_grad()
def sample_ddim(
    model_fn: Callable[..., torch.Tensor],
    x: torch.Tensor,
    timesteps: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callable[[dict], None] | None = None,
    disable: bool = False,
    *,
    schedule,
    eta: float = 0.0,
    generator: Generators = None,
    self_condition: bool = False,
    context: torch.Tensor | None = None,
) -> torch.Tensor:
    """DDIM (Song et al. 2021, Eq. 12) from z_{t_S} = ``x`` (noise) down to t = 0; returns ẑ_0.

    With ``self_condition`` every step feeds the previous step's ẑ_0 as ``self_cond`` (zeros at the first
    step), as in §4.3 / Chen et al. ``callback`` receives {"i", "t", "x", "denoised"} after each step.

    ``context`` (B, k, c, h, w): clean latents of the first k frames (frame prediction, §4.4). The loss never
    trains v̂ on those frames, so their DDIM update is meaningless; instead, before every model call their z_t
    is set to q_sample(context, γ(t), ε_ctx) (Eq. 1) with ε_ctx the initial noise of those frames, exactly the
    input the model saw for them in training (and the path deterministic DDIM follows for a perfect model).
    The returned ẑ_0 holds ``context`` in those frames.
    """
    extra_args = extra_args or {}
    b = x.shape[0]
    x0 = torch.zeros_like(x)
    k = 0 if context is None else context.shape[1]
    eps_ctx = x[:, :k].clone()
    for i in tqdm(range(len(timesteps) - 1), disable=disable, desc="DDIM", leave=False):
        t = torch.full((b,), float(timesteps[i]), device=x.device)
        s = torch.full((b,), float(timesteps[i + 1]), device=x.device)
        if k:
            x = x.clone()
            x[:, :k] = q_sample(context.to(x.dtype), schedule.gamma(t), eps_ctx)
        kwargs = dict(extra_args)
        if self_condition:
            kwargs["self_cond"] = x0
        v_hat = model_fn(x, t, **kwargs).to(x.dtype)
        noise = None
        if eta > 0:
            noise = randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        x, x0 = ddim_step(x, v_hat, schedule.gamma(t), schedule.gamma(s), eta=eta, noise=noise)
        if callback is not None:
            callback({"i": i, "t": timesteps[i], "x": x, "denoised": x0})
    if k:
        x0 = x0.clone()
        x0[:, :k] = context.to(x0.dtype)
    return x0


def classifier_free_guidance(
    model_fn: Callable[..., torch.Tensor], scale: float, uncond_args: dict
) -> Callable[..., torch.Tensor]:
    """Guided model: v̂ = v̂_uncond + w (v̂_cond - v̂_uncond) (Ho & Salimans 2022), both halves in one batch.

    ``uncond_args`` overrides conditioning kwargs for the unconditional half (class label -> null class,
    ``frame_cond`` -> zeros, §4.4). In v-space the combination equals the ε-space one, since ε̂ is linear in
    v̂ for fixed z_t. ``scale == 1`` returns ``model_fn`` unchanged (no extra cost).
    """
    if scale == 1.0:
        return model_fn

    def guided(x: torch.Tensor, t: torch.Tensor, **kwargs) -> torch.Tensor:
        both = {}
        for key in set(kwargs) | set(uncond_args):
            c, u = kwargs.get(key), uncond_args.get(key, kwargs.get(key))
            both[key] = torch.cat([c, u]) if isinstance(c, torch.Tensor) else c
        v = model_fn(torch.cat([x, x]), torch.cat([t, t]), **both)
        v_cond, v_uncond = v.chunk(2)
        return v_uncond + scale * (v_cond - v_uncond)

    return guided


def sample_autoregressive(
    sample_chunk: Callable[[torch.Tensor | None], torch.Tensor],
    num_chunks: int,
    context_frames: int,
    *,
    first_context: torch.Tensor | None = None,
    to_context: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """Long videos (§4.4, appendix): each chunk is conditioned (c_fp) on the previous chunk's last frames.

    ``sample_chunk(context)`` samples one latent chunk (B, T, c, h, w) given clean context latents
    (B, k, c, h, w) or None; ``to_context(chunk)`` makes the next context (default: the last
    ``context_frames`` latent frames; the ``sample`` command decodes the chunk and re-encodes its last
    1 + f_t (k - 1) frames, as the appendix describes). Returns every chunk; chunk i > 0 repeats its
    context in its first k frames, which the caller drops when stitching.
    """
    to_context = to_context or (lambda chunk: chunk[:, -context_frames:])
    chunks = [sample_chunk(first_context)]
    for _ in range(num_chunks - 1):
        chunks.append(sample_chunk(to_context(chunks[-1])))
    return chunks
