"""Noise schedule γ(t) (§3, Eq. 1; Table 8: linear β 1e-4 → 0.02, 1000 steps, zero terminal SNR).

The discrete table ``alphas_cumprod[i]`` = ᾱ_i for step i = 1..N is the usual DDPM product of (1 - β).
Continuous time t ∈ [0, 1] maps onto it with step i at t = i / N and t = 0 the clean data (γ(0) = 1):

    γ(t) = linear interpolation of [1, ᾱ_1, ..., ᾱ_N] at t * N.

For t = i / N (what training draws by default and what every DDIM grid uses) this *is* the table value;
between grid points it is linear in ᾱ. With ``zero_terminal_snr`` (Lin et al. 2023, "Common Diffusion
Noise Schedules and Sample Steps are Flawed", Algorithm 1) sqrt(ᾱ) is shifted and scaled so that
sqrt(ᾱ_N) = 0 exactly while sqrt(ᾱ_1) keeps its value: at t = 1 the model sees pure noise, as at sampling.
"""

from __future__ import annotations

import torch

from walt_bench.diffusion.config import DiffusionConfig


def linear_betas(num_timesteps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """β_1..β_N spaced linearly (Table 8), float64 (N,)."""
    return torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Lin et al. 2023, Algorithm 1: rescale β so that ᾱ_N = 0 and ᾱ_1 is unchanged.

    sqrt(ᾱ) is shifted by -sqrt(ᾱ_N) and scaled by sqrt(ᾱ_1) / (sqrt(ᾱ_1) - sqrt(ᾱ_N)); β is recovered
    from the ratios of consecutive ᾱ (the last β becomes exactly 1).
    """
    alphas_bar_sqrt = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = alphas_bar_sqrt[0].clone(), alphas_bar_sqrt[-1].clone()
    alphas_bar_sqrt = (alphas_bar_sqrt - last) * first / (first - last)
    alphas_bar = alphas_bar_sqrt**2
    alphas = torch.cat([alphas_bar[:1], alphas_bar[1:] / alphas_bar[:-1]])
    return 1.0 - alphas


class NoiseSchedule:
    """γ(t) for continuous t ∈ [0, 1], backed by the discrete N-step table (see the module docstring)."""

    def __init__(
        self,
        num_timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        zero_terminal_snr: bool = True,
    ):
        betas = linear_betas(num_timesteps, beta_start, beta_end)
        if zero_terminal_snr:
            betas = rescale_zero_terminal_snr(betas)
        self.num_timesteps = num_timesteps
        self.zero_terminal_snr = zero_terminal_snr
        self.betas = betas  # (N,) float64
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)  # ᾱ_1..ᾱ_N
        if zero_terminal_snr:  # cumprod of (1 - 1) is 0 up to rounding; make it exact
            self.alphas_cumprod[-1] = 0.0
        # γ on the grid t = i/N, i = 0..N (γ(0) = 1: clean data)
        self._grid = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod])
        self._grids: dict[torch.device, torch.Tensor] = {}

    @classmethod
    def from_config(cls, cfg: DiffusionConfig) -> NoiseSchedule:
        return cls(cfg.num_timesteps, cfg.beta_start, cfg.beta_end, cfg.zero_terminal_snr)

    def gamma(self, t: torch.Tensor) -> torch.Tensor:
        """γ(t) (Eq. 1): monotonically decreasing from γ(0) = 1 to γ(1) = ᾱ_N (0 with zero terminal SNR).

        ``t`` is any float tensor in [0, 1]; the result has its shape, dtype and device.
        """
        grid = self._grid_on(t.device)
        pos = t.detach().to(torch.float64).clamp(0.0, 1.0) * self.num_timesteps
        lo = pos.floor().long().clamp(max=self.num_timesteps - 1)
        frac = pos - lo
        g = grid[lo] * (1.0 - frac) + grid[lo + 1] * frac
        return g.to(dtype=t.dtype if t.is_floating_point() else torch.float32)

    def _grid_on(self, device: torch.device) -> torch.Tensor:
        if device not in self._grids:
            self._grids[device] = self._grid.to(device)
        return self._grids[device]

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio γ / (1 - γ)."""
        g = self.gamma(t)
        return g / (1.0 - g)

    def sample_t(
        self,
        shape: tuple[int, ...],
        *,
        discrete: bool = True,
        device=None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Training times: t = i/N with i ~ U{1..N} (``discrete``) or t ~ U(0, 1) (Eq. 2), float32."""
        if discrete:
            i = torch.randint(1, self.num_timesteps + 1, shape, generator=generator, device=device)
            return i.float() / self.num_timesteps
        return torch.rand(shape, generator=generator, device=device)
