"""The W.A.L.T denoiser f(z_t; z_sc, c_fp, c, t) -> v_hat (§4.2-4.5, Fig. 2).

Latents ``(B, T, c, h, w)`` are patchified frame by frame into ``N = T * (h/p) * (w/p)`` tokens
``(B, N, D)`` in ``(t h w)`` order, pass through layers alternating spatial and spatiotemporal window
attention, and are unpatchified into v_hat ``(B, T, c, h, w)``.

    model = WALT(DenoiserConfig(size="tiny"), latent_channels=8, latent_size=(5, 16, 16), num_classes=101)
    v_hat = model(z_t, t, class_labels=y, self_cond=z0_est, is_image=is_image)

Assumptions where the paper is silent (all reproduce its parameter counts; see
``experiments/models/README.md``):

- Every layer i has its own rank-r branch, A^i = A^1 + W_b^i W_a^i (c + t), including the first (the
  r-scaling of Table 3d needs 24 branches for L: 24 x 7 x 1024 parameters per unit of r).
- The shared A^1 = MLP(c + t) is DiT's SiLU + Linear(D, 6D); the final layer has its own AdaLN (2D).
- Relative position tables are per layer; LoRA factors have no bias; t is embedded as sinusoids of
  1000 t (the discrete-step range) followed by a 2-layer MLP (DiT).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from walt_bench.denoiser.attention import Grid
from walt_bench.denoiser.conditioning import LabelEmbedder, SharedAdaLN, TimestepEmbedder
from walt_bench.denoiser.config import DenoiserConfig
from walt_bench.denoiser.info import forward_flops
from walt_bench.denoiser.sizes import resolve_size
from walt_bench.denoiser.transformer import FinalLayer, WALTLayer
from walt_bench.errors import UserError


# ---------------------------------------------------------------------------------------------------
# Embedding parts
# ---------------------------------------------------------------------------------------------------
def interpolate_table(table: torch.Tensor, size: tuple[int, int], mode: str = "bicubic") -> torch.Tensor:
    """Resize a spatial embedding table (h, w, D) to ``size`` (aspect-ratio finetuning, §4.5, Table 6)."""
    if tuple(table.shape[:2]) == tuple(size):
        return table
    grid = rearrange(table, "h w d -> 1 d h w").float()
    grid = F.interpolate(grid, size=tuple(size), mode=mode, align_corners=False)
    return rearrange(grid, "1 d h w -> h w d").to(table.dtype)


class PositionEmbedding(nn.Module):
    """Learnable absolute position embeddings: spatial (h_p, w_p, D) + temporal (t, D), summed (§4.2).

    Image samples (``is_image``) use the first temporal embedding for every frame. A grid other than the
    table's is served by interpolating the spatial table; loading a checkpoint with another spatial
    table interpolates it to this model's (bicubic).
    """

    def __init__(self, grid: Grid, dim: int, mode: str = "bicubic"):
        super().__init__()
        self.mode = mode
        self.spatial = nn.Parameter(torch.empty(grid[1], grid[2], dim))
        self.temporal = nn.Parameter(torch.empty(grid[0], dim))
        nn.init.trunc_normal_(self.spatial, std=0.02)
        nn.init.trunc_normal_(self.temporal, std=0.02)

    def forward(self, grid: Grid, is_image: torch.Tensor | None = None) -> torch.Tensor:
        """(1 or B, t*h*w, D) embeddings for ``grid``."""
        t, h, w = grid
        if t > self.temporal.shape[0]:
            raise ValueError(f"{t} latent frames given; the temporal embedding has {self.temporal.shape[0]}")
        spatial = interpolate_table(self.spatial, (h, w), self.mode)
        pos = self.temporal[:t, None, None] + spatial[None]  # (t, h, w, D)
        if is_image is not None:
            image_pos = (self.temporal[0] + spatial)[None].expand_as(pos)
            pos = torch.where(is_image[:, None, None, None, None], image_pos[None], pos[None])
        return rearrange(pos, "... t h w d -> ... (t h w) d")

    @torch.no_grad()
    def resize(self, size: tuple[int, int]) -> None:
        """Interpolate the spatial table in place to ``size`` (h_p, w_p)."""
        self.spatial = nn.Parameter(interpolate_table(self.spatial.data, size, self.mode))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        name = prefix + "spatial"
        old = state_dict.get(name)
        if old is not None and old.shape != self.spatial.shape and old.shape[-1] == self.spatial.shape[-1]:
            state_dict[name] = interpolate_table(old, tuple(self.spatial.shape[:2]), self.mode)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class LowResUpsampler(nn.Module):
    """Depth-to-space upsampling of the low-resolution latent (§4.5): per frame, Conv2d(c, 4c, 3) and
    PixelShuffle(2), (B, T, c, h/2, w/2) -> (B, T, c, h, w)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, 4 * channels, kernel_size=3, padding=1)

    def forward(self, lowres: torch.Tensor) -> torch.Tensor:
        b = lowres.shape[0]
        x = F.pixel_shuffle(self.conv(rearrange(lowres, "b t c h w -> (b t) c h w")), 2)
        return rearrange(x, "(b t) c h w -> b t c h w", b=b)


# ---------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------
class WALT(nn.Module):
    """Window Attention Latent Transformer: predicts v for a noisy latent (v-prediction, §3)."""

    def __init__(
        self,
        cfg: DenoiserConfig,
        *,
        latent_channels: int,
        latent_size: tuple[int, int, int],
        num_classes: int,
    ):
        super().__init__()
        self.activation_checkpointing = False  # the engine sets it (train.activation_checkpointing)
        size = resolve_size(cfg)
        t, h, w = latent_size
        p = cfg.patch_size
        problems = []
        if size.depth % 2:
            problems.append(
                f"model.depth: got {size.depth} - layers alternate spatial/spatiotemporal, use an even number"
            )
        if size.hidden_size % size.num_heads:
            problems.append(
                f"model.hidden_size: got {size.hidden_size} - must be divisible by num_heads={size.num_heads}"
            )
        if h % p or w % p:
            problems.append(f"model.patch_size: got {p} - must divide the latent frame {h}x{w}")
        if problems:
            raise UserError("invalid denoiser geometry:\n  - " + "\n  - ".join(problems))
        self.cfg, self.size = cfg, size
        self.latent_channels = latent_channels
        self.latent_size = tuple(latent_size)
        self.num_classes = num_classes
        self.patch_size = p
        self.grid: Grid = (t, h // p, w // p)
        d, c = size.hidden_size, latent_channels

        # input channels: z_t | self-conditioning estimate | c_fp = (m * z0, m) | upsampled low-res latent
        self.in_channels = (
            c + c * cfg.self_condition + (c + 1) * cfg.frame_condition + c * cfg.lowres_condition
        )
        self.patch_embed = nn.Linear(self.in_channels * p * p, d)  # = Conv2d(kernel p, stride p) per frame
        self.pos_embed = PositionEmbedding(self.grid, d)
        self.t_embedder = TimestepEmbedder(d)
        self.y_embedder = LabelEmbedder(num_classes, d) if num_classes > 0 else None
        self.noise_aug_embedder = TimestepEmbedder(d) if cfg.lowres_condition else None
        self.lowres_upsampler = LowResUpsampler(c) if cfg.lowres_condition else None
        self.text_proj = nn.Linear(cfg.text_dim, d) if cfg.text_dim else None
        self.shared_adaln = SharedAdaLN(d) if cfg.adaln == "lora" else None

        clip = lambda win: tuple(min(a, g) for a, g in zip(win, self.grid))  # noqa: E731
        self.spatial_window = clip(cfg.spatial_window) if cfg.spatial_window else None  # None: whole frame
        self.st_window = self.grid if cfg.st_window == "full" else clip(cfg.st_window)
        spatial_table = self.spatial_window or (1, *self.grid[1:])
        self.layers = nn.ModuleList()
        for i in range(size.depth):
            kind = "spatial" if i % 2 == 0 else "spatiotemporal"
            cross = cfg.text_dim is not None and (cfg.cross_attention == "all" or kind == "spatial")
            self.layers.append(
                WALTLayer(
                    kind,
                    d,
                    size.num_heads,
                    int(round(d * size.mlp_ratio)),
                    spatial_table if kind == "spatial" else self.st_window,
                    qk_norm=cfg.qk_norm,
                    qk_norm_type=cfg.qk_norm_type,
                    rel_pos_bias=cfg.rel_pos_bias,
                    lora_rank=cfg.lora_rank if cfg.adaln == "lora" else None,
                    cross_attention=cross,
                )
            )
        self.final = FinalLayer(d, p * p * c)
        self._init_weights()

    def _init_weights(self) -> None:
        """Xavier-uniform for token projections (DiT); AdaLN, gates' sources and output stay zero."""
        linears = [self.patch_embed, *([self.text_proj] if self.text_proj is not None else [])]
        for layer in self.layers:
            linears += [layer.attn.qkv, layer.attn.proj, layer.mlp.fc1, layer.mlp.fc2]
            if layer.cross_attn is not None:
                linears += [layer.cross_attn.q, layer.cross_attn.kv]
        for linear in linears:
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def window_for(self, kind: str, grid: Grid) -> Grid:
        """The attention window of a layer kind on ``grid`` (spatial default: the whole latent frame)."""
        if kind == "spatial":
            return self.spatial_window or (1, *grid[1:])
        return grid if self.cfg.st_window == "full" else self.st_window

    def resize_pos_embed(self, size: tuple[int, int]) -> None:
        """Interpolate the spatial position embedding to a new latent frame (h, w) (aspect-ratio finetune)."""
        h, w = size
        self.pos_embed.resize((h // self.patch_size, w // self.patch_size))

    def fsdp_units(self) -> list[nn.Module]:
        """What FSDP2 shards as its own unit (``train.parallel=fsdp``, ``engine/distributed.py``): each W.A.L.T
        layer, all-gathered just before it runs and freed after; the root keeps the patch and position
        embeddings, the conditioning embedders, AdaLN-LoRA's shared A^1 and the final layer."""
        return list(self.layers)

    def flops_per_sample(self, text_len: int = 0) -> float:
        """Training FLOPs per sample (forward + backward = 3 x forward matmul FLOPs), for MFU."""
        return 3.0 * forward_flops(self, text_len=text_len)["total"]

    def forward(
        self,
        z_t: torch.Tensor,
        t: torch.Tensor,
        *,
        class_labels: torch.Tensor | None = None,
        self_cond: torch.Tensor | None = None,
        frame_cond: torch.Tensor | None = None,
        lowres: torch.Tensor | None = None,
        noise_aug: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        is_image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """z_t (B, T, c, h, w), t (B,) | (B, T) in [0, 1] -> v_hat (B, T, c, h, w).

        class_labels (B,) | (B, T) long, ``num_classes`` = null class (default when absent); self_cond
        (B, T, c, h, w) and frame_cond (B, T, c+1, h, w) default to zeros; lowres (B, T, c, h/2, w/2) and
        noise_aug (B,) | (B, T) for super-resolution stages; text (B, L, text_dim) with text_mask (B, L)
        bool (True = a real token); text=None skips the cross-attention sub-layers. is_image (B,) bool:
        identity attention in spatiotemporal layers and the first temporal embedding for every frame.
        """
        cfg, (b, frames, c, h, w), p = self.cfg, z_t.shape, self.patch_size
        # 1. input channels: z_t | self-cond estimate | c_fp | low-res latent upsampled (depth-to-space)
        inputs = [z_t]
        if cfg.self_condition:
            inputs.append(self_cond if self_cond is not None else torch.zeros_like(z_t))
        if cfg.frame_condition:
            inputs.append(frame_cond if frame_cond is not None else z_t.new_zeros(b, frames, c + 1, h, w))
        if cfg.lowres_condition:
            if lowres is None:
                raise ValueError("this super-resolution model needs `lowres` (B, T, c, h/2, w/2)")
            inputs.append(self.lowres_upsampler(lowres))
        built = dict(
            self_cond=cfg.self_condition, frame_cond=cfg.frame_condition, lowres=cfg.lowres_condition
        )
        given = dict(self_cond=self_cond, frame_cond=frame_cond, lowres=lowres)
        unused = [k for k, v in given.items() if v is not None and not built[k]]
        unused += ["text"] if text is not None and cfg.text_dim is None else []
        if unused:
            raise ValueError(f"{unused} given but the model was built without these inputs (model config)")
        x = torch.cat(inputs, dim=2)  # (B, T, C_in, h, w)

        # 2. patchify each latent frame and add space + time position embeddings; a 1-frame latent is an
        #    image (§4.2): identity attention in spatiotemporal layers even when is_image is not given
        if frames == 1 and is_image is None:
            is_image = torch.ones(b, dtype=torch.bool, device=z_t.device)
        grid = (frames, h // p, w // p)
        x = rearrange(x, "b t c (h p1) (w p2) -> b (t h w) (p1 p2 c)", p1=p, p2=p)
        x = self.patch_embed(x) + self.pos_embed(grid, is_image)  # (B, N, D)

        # 3. conditioning c + t (+ noise-augmentation level), per sample (B, 1, D) or per frame (B, T, D)
        cond = self.t_embedder(t)
        if self.y_embedder is not None:
            labels = class_labels if class_labels is not None else t.new_full((b,), self.num_classes).long()
            cond = cond + self.y_embedder(labels)
        elif class_labels is not None:
            raise ValueError("class_labels given but the model has num_classes=0")
        if self.noise_aug_embedder is not None:
            cond = cond + self.noise_aug_embedder(noise_aug if noise_aug is not None else t.new_zeros(b))
        if cond.shape[1] not in (1, frames):
            raise ValueError(f"per-frame conditioning has {cond.shape[1]} rows for {frames} latent frames")
        cond_act = F.silu(cond)
        shared = self.shared_adaln(cond_act) if self.shared_adaln is not None else None  # A^1 (Eq. 3)
        text_tokens = self.text_proj(text) if text is not None else None  # (B, L, D)

        # 4. layers: spatial (SW) and spatiotemporal (STW, identity for images) alternate
        #    (with activation checkpointing, set by the engine from train.activation_checkpointing, each
        #    layer's activations are recomputed in the backward pass instead of stored)
        recompute = self.activation_checkpointing and self.training and torch.is_grad_enabled()
        for layer in self.layers:
            args = (
                x,
                grid,
                self.window_for(layer.kind, grid),
                cond_act,
                shared,
                is_image,
                text_tokens,
                text_mask,
            )
            x = checkpoint(layer, *args, use_reentrant=False) if recompute else layer(*args)

        # 5. final AdaLN + linear, unpatchify to v_hat
        x = self.final(x, cond_act)  # (B, N, p*p*c)
        return rearrange(x, "b (t h w) (p1 p2 c) -> b t c (h p1) (w p2)", t=frames, h=h // p, p1=p, p2=p)


def build_denoiser(spec, device=None) -> WALT:
    """The WALT model of an ExperimentSpec (latent channels, latent grid and classes from the spec).

    ``device="meta"`` builds it without allocating memory (parameter counts of big sizes).
    """
    kwargs = dict(
        latent_channels=spec.tokenizer.latent_channels,
        latent_size=tuple(spec.latent_shape),
        num_classes=spec.data.num_classes,
    )
    if device is None:
        return WALT(spec.model, **kwargs)
    with torch.device(device):
        return WALT(spec.model, **kwargs)
