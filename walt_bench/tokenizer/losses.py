"""Tokenizer losses: reconstruction, perceptual, non-saturating GAN, LeCAM and R1 (VQGAN / MAGVIT recipe).

W.A.L.T §3: "Following VQ-GAN, reconstruction quality can be further improved by adding adversarial and
perceptual losses"; the weights are MAGVIT-v2's (see ``TokenizerConfig``). Pixels are ``(B, T, 3, H, W)``.

The perceptual network is pluggable: :data:`FEATURE_NETWORKS` maps a name to a constructor of a module that
returns a list of feature maps; :func:`load_feature_network` loads its weights from a path (never a download)
and raises :class:`~walt_bench.errors.WeightsError` for a missing or mismatched file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from walt_bench.errors import UserError, WeightsError

log = logging.getLogger("walt_bench.tokenizer")


# ---------------------------------------------------------------------------------------------------------
# Reconstruction
# ---------------------------------------------------------------------------------------------------------


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, kind: str = "l2") -> torch.Tensor:
    """Mean absolute (``l1``) or squared (``l2``) pixel error."""
    if kind == "l1":
        return (x_hat - x).abs().mean()
    if kind == "l2":
        return (x_hat - x).pow(2).mean()
    raise ValueError(f"reconstruction loss must be 'l1' or 'l2', got {kind!r}")


# ---------------------------------------------------------------------------------------------------------
# Perceptual loss
# ---------------------------------------------------------------------------------------------------------


class VGG16Features(nn.Module):
    """VGG-16 convolutional trunk with torchvision's ``features.<i>`` parameter names; returns LPIPS' taps.

    Load weights saved with ``torch.save(torchvision.models.vgg16(weights="IMAGENET1K_V1").state_dict(), p)``
    (``classifier.*`` keys are ignored). Input: images ``(N, 3, H, W)`` in [-1, 1]; output: relu1_2, relu2_2,
    relu3_3, relu4_3, relu5_3.
    """

    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    taps = (3, 8, 15, 22, 29)

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        ch = 3
        for v in self.cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(ch, v, 3, padding=1), nn.ReLU(inplace=False)]
                ch = v
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = ((x + 1) / 2 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                out.append(h)
        return out


FEATURE_NETWORKS: dict[str, Callable[[], nn.Module]] = {"vgg16": VGG16Features}
IGNORED_KEY_PREFIXES = ("classifier.",)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable file is the user's to fix
        raise WeightsError(
            f"could not read perceptual-network weights {path}: {type(e).__name__}: {e}. Expected a state dict "
            "saved with torch.save(model.state_dict(), path) or a .safetensors file."
        ) from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a state dict (name -> tensor); got {type(state).__name__}")
    return {k: v for k, v in state.items() if not k.startswith(IGNORED_KEY_PREFIXES)}


def load_feature_network(name: str, path: str | Path) -> nn.Module:
    """Build ``FEATURE_NETWORKS[name]``, load its weights from ``path`` strictly, freeze it, return it in eval mode."""
    if name not in FEATURE_NETWORKS:
        raise UserError(
            f"tokenizer.perceptual_network={name!r} is unknown; choose one of {sorted(FEATURE_NETWORKS)}"
        )
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"perceptual-network weights not found at {path}. Put the {name} state dict there (nothing is "
            "downloaded), or set tokenizer.perceptual_weights=null to train without the perceptual term."
        )
    net = FEATURE_NETWORKS[name]()
    state = _read_state_dict(path)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise WeightsError(
            f"{path} does not match the '{name}' network: missing keys {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}, wrong shapes {wrong[:5]}. Expected a state dict of "
            f"{type(net).__name__} ({len(expected)} tensors)."
        )
    net.load_state_dict(state)
    net.requires_grad_(False)
    return net.eval()


class PerceptualLoss(nn.Module):
    """LPIPS-style distance without learned layer weights, per frame.

    For each feature map: unit-normalise over channels, squared difference summed over channels, averaged over
    positions; summed over feature maps and averaged over frames and clips.
    """

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def train(self, mode: bool = True) -> PerceptualLoss:  # the frozen network always stays in eval mode
        super().train(mode)
        self.network.eval()
        return self

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        frames = torch.cat(
            [rearrange(x_hat, "b t c h w -> (b t) c h w"), rearrange(x, "b t c h w -> (b t) c h w")]
        )
        feats = self.network(frames)
        loss = x.new_zeros(())
        for f in feats:
            f = f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            f_hat, f_ref = f.chunk(2)
            loss = loss + (f_hat - f_ref).pow(2).sum(dim=1).mean()
        return loss


def build_perceptual_loss(weight: float, network: str, weights_path: str | None) -> PerceptualLoss | None:
    """The perceptual loss, or ``None`` when its weight is 0. A weight > 0 without a weights path is an error:
    the spec would record a loss term that never ran (nothing is downloaded; the smoke scale sets the weight 0)."""
    if weight <= 0:
        return None
    if weights_path is None:
        raise WeightsError(
            f"tokenizer.perceptual_weight={weight} but tokenizer.perceptual_weights is not set, and nothing is "
            f"downloaded. Give the path of a '{network}' state dict (tokenizer.perceptual_weights=/path/vgg16.pth), "
            "or train without the term: tokenizer.perceptual_weight=0."
        )
    return PerceptualLoss(load_feature_network(network, weights_path))


# ---------------------------------------------------------------------------------------------------------
# Adversarial losses and regularisers
# ---------------------------------------------------------------------------------------------------------


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: ``E[softplus(-D(G(z)))] = -E[log sigmoid(D(G(z)))]`` (Goodfellow et al.)."""
    return F.softplus(-fake_logits).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss of the non-saturating GAN: ``E[softplus(-D(x))] + E[softplus(D(G(z)))]``."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


class LeCAM(nn.Module):
    """LeCAM regulariser (Tseng et al. 2021, Eq. 3) with EMA anchors ``alpha_R``, ``alpha_F`` of D's outputs.

    ``R_LC = E[(D(x) - alpha_F)^2] + E[(D(G(z)) - alpha_R)^2]``; call :meth:`update` once per discriminator step.
    """

    def __init__(self, decay: float = 0.999):
        super().__init__()
        self.decay = decay
        self.register_buffer("ema_real", torch.zeros(()))
        self.register_buffer("ema_fake", torch.zeros(()))

    @torch.no_grad()
    def update(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> None:
        self.ema_real.lerp_(real_logits.mean().float(), 1 - self.decay)
        self.ema_fake.lerp_(fake_logits.mean().float(), 1 - self.decay)

    def forward(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return (real_logits - self.ema_fake).pow(2).mean() + (fake_logits - self.ema_real).pow(2).mean()


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 gradient penalty ``E[||grad_x D(x)||^2]`` on real inputs (Mescheder et al. 2018); ``real`` needs grad."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()
