"""Exponential moving average of model weights (Table 8: EMA for ImageNet, UCF-101 and K600).

``ema <- decay * ema + (1 - decay) * param`` after every optimizer step; before ``start_step`` the EMA
is a plain copy of the weights. Floating-point buffers are copied (not averaged). Under FSDP2 the
shadow tensors are shards (DTensors) like the parameters they track.
"""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """Shadow copies of a module's floating-point parameters, keyed by parameter name."""

    def __init__(self, module: nn.Module, decay: float, start_step: int = 0):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1], got {decay}")
        self.decay = decay
        self.start_step = start_step
        self.names = [n for n, p in module.named_parameters() if p.dtype.is_floating_point]
        params = dict(module.named_parameters())
        self.shadow = [params[n].detach().clone() for n in self.names]

    def _params(self, module: nn.Module) -> list[torch.Tensor]:
        params = dict(module.named_parameters())
        return [params[n].detach() for n in self.names]

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        """Fold the current weights in after optimizer step ``step`` (0-based)."""
        params = self._params(module)
        if step < self.start_step:
            torch._foreach_copy_(self.shadow, params)
        else:
            torch._foreach_lerp_(self.shadow, params, 1.0 - self.decay)

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Write the EMA weights into ``module`` (same architecture), e.g. a copy used for sampling."""
        torch._foreach_copy_(self._params(module), self.shadow)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Full (unsharded) tensors on CPU, keyed like the module's ``state_dict``."""
        return {n: _full(t).cpu() for n, t in zip(self.names, self.shadow)}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = [n for n in self.names if n not in state]
        if missing:
            raise KeyError(f"EMA state lacks {len(missing)} parameter(s), e.g. {missing[:3]}")
        for n, t in zip(self.names, self.shadow):
            _load_into(t, state[n])


def _full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def _load_into(dst: torch.Tensor, full: torch.Tensor) -> None:
    """Copy a full tensor into ``dst``, which may be a DTensor shard."""
    if hasattr(dst, "device_mesh"):
        from torch.distributed.tensor import distribute_tensor

        src = distribute_tensor(full.to(dst.device, dst.dtype), dst.device_mesh, dst.placements)
        dst.copy_(src)
    else:
        dst.copy_(full.to(dst.device, dst.dtype))
