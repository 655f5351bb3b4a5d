"""Window attention of W.A.L.T (§4.2-4.3): spatial (SW) and spatiotemporal (STW) windows.

Tokens are ``(B, N, D)`` with ``N = t * h * w`` in ``(t h w)`` order (``t`` latent frames, ``h x w``
patches). A layer partitions them into non-overlapping windows by a reshape,

    "b (nt wt nh wh nw ww) c -> (b nt nh nw) (wt wh ww) c",

and runs ``F.scaled_dot_product_attention`` on the window batch: attention is never a masked full
attention over all tokens, so cost grows with N x window, not N^2. A spatial window is ``(1, h', w')``
(default: the whole latent frame), a spatiotemporal window ``(t', h', w')`` (default 5x8x8); a window
equal to the whole grid is full self-attention (Table 3b). Windows larger than the grid (e.g. a 5-frame
ST window on a 1-frame image latent) are clipped to it.

Relative position bias (Swin, §4.2) is an additive float ``attn_mask`` of shape ``(heads, n, n)``,
broadcast over windows. On CUDA an additive mask selects the memory-efficient (or cuDNN) SDPA backend;
with ``rel_pos_bias=False`` and no mask, flash attention is eligible. Window sizes whose token count n
is a multiple of 8 (5x8x8 = 320, 1x16x16 = 256) keep the bias aligned for those kernels.

Identity attention for images (§4.2, Fig. 2): in spatiotemporal layers an image sample attends only
to itself, i.e. its value vectors pass through unchanged. We compute attention for the whole batch
(keeping one batched kernel call) and then replace image samples' outputs by their values,
``out = where(is_image, v, out)``, before the output projection. An image's output therefore never
depends on other samples or on other frames of its stack.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from walt_bench.denoiser.config import effective_window, tiles

Grid = tuple[int, int, int]

_PARTITION = "b (nt wt nh wh nw ww) c -> (b nt nh nw) (wt wh ww) c"
_MERGE = "(b nt nh nw) (wt wh ww) c -> b (nt wt nh wh nw ww) c"


# ---------------------------------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------------------------------
def tiling_window(grid: Grid, window: Grid) -> Grid:
    """The effective ``window`` on ``grid`` (``config.effective_window``); ValueError when it does not tile it."""
    clipped = effective_window(window, grid)
    if not tiles(window, grid):
        raise ValueError(
            f"window {'x'.join(map(str, clipped))} does not tile the token grid {'x'.join(map(str, grid))}; "
            "choose model.spatial_window / model.st_window that divide the latent grid after patchify"
        )
    return clipped


def num_windows(grid: Grid, window: Grid) -> int:
    return math.prod(g // w for g, w in zip(grid, window))


def window_partition(x: torch.Tensor, grid: Grid, window: Grid) -> torch.Tensor:
    """(B, t*h*w, C) -> (B * num_windows, wt*wh*ww, C)."""
    (t, h, w), (wt, wh, ww) = grid, window
    return rearrange(x, _PARTITION, nt=t // wt, nh=h // wh, nw=w // ww, wt=wt, wh=wh, ww=ww)


def window_merge(x: torch.Tensor, grid: Grid, window: Grid) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * num_windows, n, C) -> (B, t*h*w, C)."""
    (t, h, w), (wt, wh, ww) = grid, window
    return rearrange(x, _MERGE, nt=t // wt, nh=h // wh, nw=w // ww, wt=wt, wh=wh, ww=ww)


# ---------------------------------------------------------------------------------------------------
# Relative position bias and qk-norm
# ---------------------------------------------------------------------------------------------------
def relative_position_index(window: Grid, table: Grid, device=None) -> torch.Tensor:
    """(n, n) index into a Swin table of ``prod(2 * table - 1)`` rows for a window <= table."""
    coords = torch.stack(torch.meshgrid(*[torch.arange(w, device=device) for w in window], indexing="ij"))
    coords = coords.flatten(1)  # (3, n)
    rel = coords[:, :, None] - coords[:, None, :]  # (3, n, n), each in [-(w-1), w-1]
    rel = rel + torch.tensor([s - 1 for s in table], device=device)[:, None, None]
    return (rel[0] * (2 * table[1] - 1) + rel[1]) * (2 * table[2] - 1) + rel[2]


class RelativePositionBias(nn.Module):
    """Learned bias per head and relative offset (dt, dy, dx) inside a window (Swin; 2D when table t = 1).

    The table has shape ``(2t-1, 2h-1, 2w-1, heads)`` for the largest window ``(t, h, w)``. A checkpoint
    whose table was made for another window (e.g. the 9:16 finetune of Table 6) is resized on load by
    bicubic interpolation over (dy, dx) for each dt.
    """

    def __init__(self, table_window: Grid, num_heads: int):
        super().__init__()
        self.table_window = tuple(table_window)
        self.num_heads = num_heads
        self.table = nn.Parameter(torch.empty(*(2 * w - 1 for w in table_window), num_heads))
        nn.init.trunc_normal_(self.table, std=0.02)
        self._index_cache: dict[tuple, torch.Tensor] = {}

    def forward(self, window: Grid) -> torch.Tensor:
        """(heads, n, n) additive bias for ``window``."""
        if any(w > s for w, s in zip(window, self.table_window)):
            raise ValueError(f"window {window} exceeds the relative-bias table's window {self.table_window}")
        key = (tuple(window), self.table.device)
        if key not in self._index_cache:
            self._index_cache[key] = relative_position_index(window, self.table_window, self.table.device)
        return self.table.flatten(0, 2)[self._index_cache[key]].permute(2, 0, 1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        name = prefix + "table"
        old = state_dict.get(name)
        if old is not None and old.shape != self.table.shape and old.shape[0] == self.table.shape[0]:
            state_dict[name] = resize_bias_table(old, self.table.shape[1:3])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def resize_bias_table(table: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of a (st, sh, sw, heads) relative-bias table over (sh, sw) to ``size``."""
    grid = rearrange(table, "t h w n -> (t n) 1 h w").float()
    grid = F.interpolate(grid, size=tuple(size), mode="bicubic", align_corners=True)
    return rearrange(grid, "(t n) 1 h w -> t h w n", n=table.shape[-1]).to(table.dtype)


def make_qk_norm(enabled: bool, kind: str, head_dim: int) -> nn.Module:
    """Per-head normalisation of queries or keys (ViT-22B qk-norm; Table 3e)."""
    if not enabled:
        return nn.Identity()
    return nn.LayerNorm(head_dim, eps=1e-6) if kind == "layernorm" else nn.RMSNorm(head_dim, eps=1e-6)


# ---------------------------------------------------------------------------------------------------
# Attention layers
# ---------------------------------------------------------------------------------------------------
class WindowSelfAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows, with relative bias and qk-norm.

    ``identity_for_images=True`` (spatiotemporal layers) passes image samples' values through (§4.2).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        table_window: Grid,
        *,
        qk_norm: bool = True,
        qk_norm_type: str = "layernorm",
        rel_pos_bias: bool = True,
        identity_for_images: bool = False,
    ):
        super().__init__()
        self.num_heads = num_heads
        self.identity_for_images = identity_for_images
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = make_qk_norm(qk_norm, qk_norm_type, dim // num_heads)
        self.k_norm = make_qk_norm(qk_norm, qk_norm_type, dim // num_heads)
        self.rel_bias = RelativePositionBias(table_window, num_heads) if rel_pos_bias else None
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, grid: Grid, window: Grid, is_image: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, N, D) on ``grid`` -> (B, N, D); ``is_image`` (B,) bool."""
        window = tiling_window(grid, window)
        qkv = window_partition(self.qkv(x), grid, window)  # (B nW, n, 3D)
        q, k, v = rearrange(qkv, "bw n (three h d) -> three bw h n d", three=3, h=self.num_heads)
        q, k = self.q_norm(q), self.k_norm(k)
        bias = self.rel_bias(window).to(q.dtype) if self.rel_bias is not None else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B nW, h, n, d)
        if self.identity_for_images and is_image is not None:
            keep = repeat(is_image, "b -> (b nw) 1 1 1", nw=num_windows(grid, window))
            out = torch.where(keep, v, out)  # identity attention mask: values pass through
        out = window_merge(rearrange(out, "bw h n d -> bw n (h d)"), grid, window)
        return self.proj(out)


class WindowCrossAttention(nn.Module):
    """Text cross-attention inside windows (§4.3): keys/values = concat(window tokens, text tokens).

    ``text`` is already projected to d_model (one shared projection in the model). No relative bias
    (text tokens have no position in the window); ``text_mask`` (B, L) marks valid text tokens, the
    window's own tokens are always attended.
    """

    def __init__(self, dim: int, num_heads: int, *, qk_norm: bool = True, qk_norm_type: str = "layernorm"):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.q_norm = make_qk_norm(qk_norm, qk_norm_type, dim // num_heads)
        self.k_norm = make_qk_norm(qk_norm, qk_norm_type, dim // num_heads)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        grid: Grid,
        window: Grid,
        text: torch.Tensor,
        text_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, N, D), text (B, L, D), text_mask (B, L) bool -> (B, N, D)."""
        window = tiling_window(grid, window)
        nw, n = num_windows(grid, window), math.prod(window)
        q = window_partition(self.q(x), grid, window)  # (B nW, n, D)
        kv = torch.cat(
            [window_partition(self.kv(x), grid, window), repeat(self.kv(text), "b l c -> (b nw) l c", nw=nw)],
            1,
        )  # (B nW, n + L, 2D)
        q = rearrange(q, "bw n (h d) -> bw h n d", h=self.num_heads)
        k, v = rearrange(kv, "bw m (two h d) -> two bw h m d", two=2, h=self.num_heads)
        q, k = self.q_norm(q), self.k_norm(k)
        mask = None
        if text_mask is not None:
            own = torch.ones(text_mask.shape[0], n, dtype=torch.bool, device=text_mask.device)
            mask = repeat(torch.cat([own, text_mask.bool()], 1), "b m -> (b nw) 1 1 m", nw=nw)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = window_merge(rearrange(out, "bw h n d -> bw n (h d)"), grid, window)
        return self.proj(out)
