"""walt_bench.denoiser: the W.A.L.T window-attention latent transformer (§4.2-4.5), a pure nn.Module package.

    from walt_bench.denoiser import build_denoiser, model_info
    model = build_denoiser(spec)                 # WALT sized by spec.model, spec.tokenizer, spec.data
    v_hat = model(z_t, t, class_labels=y, self_cond=z0_est, is_image=is_image)
    model_info(model)["params"]["total"]         # 313M for the paper's default L (Table 3d)

It knows tensors only: no files, schedules, training or logging.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "WALT": "model",
    "build_denoiser": "model",
    "DenoiserConfig": "config",
    "adaln_lora": "conditioning",
    "modulate": "conditioning",
    "count_parameters": "info",
    "forward_flops": "info",
    "model_info": "info",
    "SIZES": "sizes",
    "Size": "sizes",
    "resolve_size": "sizes",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # Lazy, so that `spec.py` importing `denoiser.config` at CLI start-up does not import torch.
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"walt_bench.denoiser.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'walt_bench.denoiser' has no attribute {name!r}")
