"""Parameter counts by part and FLOPs per sample of a :class:`WALT` model (for ``model info`` and MFU).

FLOPs count multiply-adds as 2 FLOPs. Forward FLOPs are the token matmuls (patch embedding, q/k/v/out
projections, MLP, output), the attention scores and weighted sums inside each window
(4 * N * n * D per layer for N tokens and n tokens per window; cross-attention windows also see the L
text tokens), and the per-sample conditioning MLPs. Training FLOPs = 3 x forward (backward ~ 2 x
forward). Element-wise work (norms, softmax, GELU, modulation) is left out, as in the usual MFU
convention (PaLM, nanoGPT).
"""

from __future__ import annotations

import math

from torch import nn

from walt_bench.denoiser.attention import tiling_window

PARTS = ("embeddings", "attention", "cross_attention", "mlp", "adaln", "output")


def part_of(name: str) -> str:
    """The part a parameter belongs to, from its name in :class:`WALT`."""
    if name.startswith("final."):
        return "output"
    if name.startswith("shared_adaln.") or ".adaln." in name:
        return "adaln"
    if ".cross_attn." in name or ".cross_norm." in name:
        return "cross_attention"
    if ".attn." in name:
        return "attention"
    if ".mlp." in name:
        return "mlp"
    return "embeddings"


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Total parameter count and counts by part (works on ``torch.device("meta")`` models)."""
    counts = dict.fromkeys(PARTS, 0)
    for name, param in model.named_parameters():
        counts[part_of(name)] += param.numel()
    return {"total": sum(counts.values()), **counts}


def forward_flops(model: nn.Module, text_len: int = 0, frames: int | None = None) -> dict[str, float]:
    """Forward FLOPs of one sample at the model's latent size (``frames`` latent frames, default all)."""
    t, h, w = model.grid
    grid = (frames or t, h, w)
    n_tok = math.prod(grid)
    d = model.size.hidden_size
    c_in, c_out = model.in_channels * model.patch_size**2, model.latent_channels * model.patch_size**2
    out = {"embeddings": 2.0 * n_tok * c_in * d, "attention": 0.0, "cross_attention": 0.0, "mlp": 0.0}
    cond = 2.0 * (model.t_embedder.freq_dim * d + d * d)  # timestep MLP
    if model.noise_aug_embedder is not None:
        cond *= 2
    if model.shared_adaln is not None:
        cond += 2.0 * d * 6 * d
    text_len = text_len if model.text_proj is not None else 0
    if text_len:
        out["embeddings"] += 2.0 * text_len * model.cfg.text_dim * d
    for layer in model.layers:
        n = math.prod(tiling_window(grid, model.window_for(layer.kind, grid)))
        out["attention"] += 2.0 * n_tok * 4 * d * d + 4.0 * n_tok * n * d
        if layer.cross_attn is not None and text_len:
            out["cross_attention"] += (
                2.0 * n_tok * 2 * d * d  # q, out
                + 2.0 * (n_tok + text_len) * 2 * d * d  # k, v of tokens and text
                + 4.0 * n_tok * (n + text_len) * d  # scores and weighted sum
            )
        out["mlp"] += 2.0 * n_tok * 2 * d * layer.mlp.fc1.out_features
        adaln = layer.adaln
        cond += 2.0 * (d * 6 * d if adaln.rank is None else adaln.rank * 7 * d)
    out["adaln"] = cond + 2.0 * d * 2 * d  # + the final layer's AdaLN
    out["output"] = 2.0 * n_tok * d * c_out
    out["total"] = sum(out.values())
    return out


def model_info(model: nn.Module, text_len: int | None = None) -> dict:
    """Parameter counts (total and by part), tokens per sample and FLOPs per sample of a WALT model.

    ``text_len``: text tokens assumed for cross-attention FLOPs (default 77 for text models, else 0).
    """
    if text_len is None:
        text_len = 77 if model.text_proj is not None else 0
    size = model.size
    fwd = forward_flops(model, text_len=text_len)
    return {
        "params": count_parameters(model),
        "params_millions": round(count_parameters(model)["total"] / 1e6, 2),
        "geometry": {
            "size": model.cfg.size,
            "depth": size.depth,
            "hidden_size": size.hidden_size,
            "num_heads": size.num_heads,
            "mlp_ratio": size.mlp_ratio,
            "patch_size": model.patch_size,
            "latent_size": list(model.latent_size),
            "token_grid": list(model.grid),
            "spatial_window": list(model.window_for("spatial", model.grid)),
            "st_window": list(model.window_for("spatiotemporal", model.grid)),
            "in_channels": model.in_channels,
        },
        "tokens_per_sample": math.prod(model.grid),
        "text_tokens": text_len,
        "forward_flops_per_sample": fwd["total"],
        "forward_flops_by_part": {k: v for k, v in fwd.items() if k != "total"},
        "train_flops_per_sample": 3.0 * fwd["total"],
    }
