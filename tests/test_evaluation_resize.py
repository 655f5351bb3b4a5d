"""The reference resizes, checked against values computed by hand."""

from __future__ import annotations

import numpy as np
import torch

from walt_bench.evaluation.resize import resize_bilinear_aligned, resize_bilinear_tf1


def test_tf1_resize_upsamples_without_half_pixel_centres():
    # 1 x 2 -> 1 x 4: src = dst * 2 / 4 = 0, 0.5, 1.0, 1.5; the last clamps to the edge pixel.
    x = torch.tensor([[[[0.0, 10.0]]]])
    out = resize_bilinear_tf1(x, (1, 4))
    np.testing.assert_allclose(out[0, 0, 0].numpy(), [0.0, 5.0, 10.0, 10.0])


def test_tf1_resize_downsamples_by_sampling_top_left_aligned_points():
    # 4 -> 3 along both axes: src = 0, 4/3, 8/3.
    x = torch.arange(16.0).reshape(1, 4, 4)
    out = resize_bilinear_tf1(x, (3, 3))
    src = np.array([0.0, 4 / 3, 8 / 3])
    expected = 4 * src[:, None] + src[None, :]  # the input is linear: value = 4 * row + col
    np.testing.assert_allclose(out[0].numpy(), expected, rtol=1e-6)


def test_tf1_resize_to_224_keeps_constant_frames_constant():
    x = torch.full((2, 16, 3, 128, 128), 0.25)
    out = resize_bilinear_tf1(x, (224, 224))
    assert out.shape == (2, 16, 3, 224, 224)
    torch.testing.assert_close(out, torch.full_like(out, 0.25))


def test_aligned_resize_keeps_the_corner_pixels():
    x = torch.tensor([[0.0, 3.0, 6.0]])  # 1 x 3 -> 1 x 5: src = 0, 0.5, 1, 1.5, 2
    np.testing.assert_allclose(resize_bilinear_aligned(x, (1, 5))[0].numpy(), [0.0, 1.5, 3.0, 4.5, 6.0])


def test_tf1_resize_128_to_64_keeps_every_other_pixel_of_noise():
    # src = dst * 128 / 64 = 2 * dst exactly: weight 1 on pixel 2j, 0 on its neighbour (hand-computed TF1 values).
    noise = torch.from_numpy(np.random.default_rng(0).integers(0, 256, size=(3, 128, 128))).float()
    out = resize_bilinear_tf1(noise, (64, 64))
    torch.testing.assert_close(out, noise[:, ::2, ::2], rtol=0, atol=0)
