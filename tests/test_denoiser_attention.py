"""Window attention equals full attention restricted to windows; identity attention for images."""

from __future__ import annotations

import math

import pytest
import torch

from walt_bench.denoiser.attention import RelativePositionBias, WindowCrossAttention, WindowSelfAttention

DIM, HEADS = 16, 2


def reference_attention(attn: WindowSelfAttention, x, grid, window, is_image=None):
    """Masked full attention over all tokens: the definition the windowed kernel must reproduce."""
    b, n, d = x.shape
    hd = d // HEADS
    q, k, v = attn.qkv(x).view(b, n, 3, HEADS, hd).permute(2, 0, 3, 1, 4)  # (B, h, N, hd)
    q, k = attn.q_norm(q), attn.k_norm(k)
    coords = (
        torch.stack(torch.meshgrid(*[torch.arange(g) for g in grid], indexing="ij")).flatten(1).T
    )  # (N, 3)
    win = torch.tensor(window)
    same_window = ((coords[:, None] // win) == (coords[None] // win)).all(-1)  # block-diagonal (N, N)
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
    if attn.rel_bias is not None:
        table = attn.rel_bias.table  # (2t-1, 2h-1, 2w-1, heads)
        local = coords % win
        rel = local[:, None] - local[None] + torch.tensor(attn.rel_bias.table_window) - 1  # (N, N, 3)
        rel = rel.clamp(min=0)  # pairs in different windows are masked anyway
        rel = torch.minimum(rel, torch.tensor(table.shape[:3]) - 1)
        scores = scores + table[rel[..., 0], rel[..., 1], rel[..., 2]].permute(2, 0, 1)
    scores = scores.masked_fill(~same_window, float("-inf"))
    out = scores.softmax(-1) @ v
    if is_image is not None and attn.identity_for_images:
        out = torch.where(is_image[:, None, None, None], v, out)
    return attn.proj(out.transpose(1, 2).reshape(b, n, d))


def make_attention(window, **kw):
    attn = WindowSelfAttention(DIM, HEADS, window, qk_norm=True, rel_pos_bias=True, **kw)
    with torch.no_grad():  # non-trivial qk-norm affine parameters
        for norm in (attn.q_norm, attn.k_norm):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_(0, 0.1)
        attn.rel_bias.table.normal_(0, 1.0)
    return attn


@pytest.mark.parametrize(
    "grid, window",
    [((3, 4, 4), (1, 4, 4)), ((3, 4, 6), (1, 2, 3)), ((4, 4, 4), (2, 2, 2)), ((3, 4, 4), (3, 2, 4))],
    ids=["spatial-frame", "spatial-small", "spatiotemporal", "spatiotemporal-all-frames"],
)
def test_windowed_equals_block_diagonal_full_attention(grid, window):
    attn = make_attention(window)
    x = torch.randn(2, math.prod(grid), DIM)
    out = attn(x, grid, window)
    torch.testing.assert_close(out, reference_attention(attn, x, grid, window), atol=1e-5, rtol=1e-5)


def test_window_equal_to_grid_is_full_attention():
    grid = (2, 4, 4)
    attn = make_attention(grid)
    x = torch.randn(2, math.prod(grid), DIM)
    reference = reference_attention(attn, x, grid, grid)  # the mask is all True here
    torch.testing.assert_close(attn(x, grid, grid), reference, atol=1e-5, rtol=1e-5)


def test_spatial_windows_never_mix_frames():
    grid, window = (3, 4, 4), (1, 4, 4)
    attn = make_attention(window)
    x = torch.randn(1, math.prod(grid), DIM)
    y = x.clone()
    y[:, 16:] = torch.randn(1, 32, DIM)  # change frames 1 and 2 only
    torch.testing.assert_close(attn(x, grid, window)[:, :16], attn(y, grid, window)[:, :16])
    assert not torch.allclose(attn(x, grid, window)[:, 16:], attn(y, grid, window)[:, 16:])


def test_identity_attention_passes_image_values_through():
    grid, window = (3, 2, 2), (3, 2, 2)
    attn = make_attention(window, identity_for_images=True)
    x = torch.randn(2, math.prod(grid), DIM)
    is_image = torch.tensor([True, False])
    out = attn(x, grid, window, is_image)
    values = attn.qkv(x)[..., 2 * DIM :]  # v of every token, heads concatenated
    torch.testing.assert_close(out[0], attn.proj(values[0]))
    assert not torch.allclose(out[1], attn.proj(values[1]), atol=1e-3)
    torch.testing.assert_close(
        out, reference_attention(attn, x, grid, window, is_image), atol=1e-5, rtol=1e-5
    )


def test_window_larger_than_grid_is_clipped_for_single_frame_latents():
    attn = make_attention((5, 2, 2))
    x = torch.randn(1, 8, DIM)  # a 1-frame latent on a 2x4 patch grid
    torch.testing.assert_close(
        attn(x, (1, 2, 4), (5, 2, 2)),
        reference_attention(attn, x, (1, 2, 4), (1, 2, 2)),
        atol=1e-5,
        rtol=1e-5,
    )


def test_window_that_does_not_tile_the_grid_is_rejected():
    attn = make_attention((1, 3, 3))
    with pytest.raises(ValueError, match="does not tile"):
        attn(torch.randn(1, 16, DIM), (1, 4, 4), (1, 3, 3))


def test_cross_attention_keys_are_window_tokens_plus_text():
    grid, window = (2, 2, 2), (1, 2, 2)
    xattn = WindowCrossAttention(DIM, HEADS)
    x, text = torch.randn(1, 8, DIM), torch.randn(1, 3, DIM)
    mask = torch.tensor([[True, True, False]])
    out = xattn(x, grid, window, text, mask)
    # reference for the first window (frame 0): keys = its 4 tokens + the 2 valid text tokens
    ctx = torch.cat([x[:, :4], text[:, :2]], 1)
    q = xattn.q_norm(xattn.q(x[:, :4]).view(1, 4, HEADS, -1).transpose(1, 2))
    k, v = xattn.kv(ctx).view(1, 6, 2, HEADS, -1).permute(2, 0, 3, 1, 4)
    ref = ((q @ xattn.k_norm(k).transpose(-1, -2)) / math.sqrt(DIM // HEADS)).softmax(-1) @ v
    torch.testing.assert_close(
        out[:, :4], xattn.proj(ref.transpose(1, 2).reshape(1, 4, DIM)), atol=1e-5, rtol=1e-5
    )


def test_relative_bias_table_is_interpolated_when_loading_another_window():
    small, wide = RelativePositionBias((1, 4, 4), HEADS), RelativePositionBias((1, 4, 7), HEADS)
    with torch.no_grad():
        small.table.copy_(torch.arange(7.0)[None, None, :, None].expand_as(small.table))  # linear in dx
    wide.load_state_dict(small.state_dict())
    assert wide.table.shape == (1, 7, 13, HEADS)
    row = wide.table[0, 3, :, 0].detach()
    torch.testing.assert_close(row[::2], torch.arange(7.0))  # old offsets land on even new offsets
    assert (row.diff() > 0).all()
