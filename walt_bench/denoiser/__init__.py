"""walt_bench.denoiser: the W.A.L.T window-attention latent transformer (§4.2-4.5), a pure nn.Module package.

    from walt_bench.denoiser import build_denoiser, model_info
    model = build_denoiser(spec)                 # WALT sized by spec.model, spec.tokenizer, spec.data
    v_hat = model(z_t, t, class_labels=y, self_cond=z0_est, is_image=is_image)
    model_info(model)["params"]["total"]         # 313M for the paper's default L (Table 3d)

It knows tensors only: no files, schedules, training or logging.
"""

from __future__ import annotations

from walt_bench.denoiser.conditioning import adaln_lora, modulate
from walt_bench.denoiser.config import DenoiserConfig
from walt_bench.denoiser.info import count_parameters, forward_flops, model_info
from walt_bench.denoiser.model import WALT
from walt_bench.denoiser.sizes import SIZES, Size, resolve_size

__all__ = [
    "SIZES",
    "WALT",
    "DenoiserConfig",
    "Size",
    "adaln_lora",
    "build_denoiser",
    "count_parameters",
    "forward_flops",
    "model_info",
    "modulate",
    "resolve_size",
]


def build_denoiser(spec, device=None) -> WALT:
    """The WALT model of an ExperimentSpec (latent channels, latent grid and classes from the spec).

    ``device="meta"`` builds it without allocating memory (parameter counts of big sizes).
    """
    import torch

    kwargs = dict(
        latent_channels=spec.tokenizer.latent_channels,
        latent_size=tuple(spec.latent_shape),
        num_classes=spec.data.num_classes,
    )
    if device is None:
        return WALT(spec.model, **kwargs)
    with torch.device(device):
        return WALT(spec.model, **kwargs)
