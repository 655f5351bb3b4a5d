"""C3D (Tran et al. 2015; Sports-1M, fine-tuned on UCF-101) for the UCF-101 Inception Score.

Reference: MAGVIT's ``videogvt`` UCF-101 IS code, which re-implements tgan2's Chainer C3D (the network behind
the TGAN/TGANv2 protocol that MAGVIT and W.A.L.T report). Its preprocessing, reproduced here:
RGB [0, 1] -> BGR -> aligned-corner bilinear resize to 112x112 (Chainer's ``resize_images``) -> ``x * 255 +
x_offset`` where ``x_offset`` (16, 112, 112, 3) is the negated Sports-1M mean clip stored with the weights.
Layout: 8 conv layers (3x3x3, 'SAME'), pools (1,2,2) then (2,2,2), a (0,1,1) pad before the last pool,
fc6/fc7 (4096, ReLU; fc7 is the feature) and fc8 (101 UCF-101 logits). Input 16 frames.

Weights (``eval.c3d_weights``), two layouts a user can obtain:

- StyleGAN-V's TorchScript ``c3d_ucf101.pt`` (a TorchScript port of tgan2's Chainer checkpoint). Its call
  convention (StyleGAN-V's ``video_inception_score.py``): uint8 clips ``(B, 3, T, H, W)`` in [0, 255] in, class
  probabilities ``(B, 101)`` out; the preprocessing above happens inside the file.
- a state dict of :class:`C3D` (``conv1a.weight`` (64, 3, 3, 3, 3), ..., ``fc8.bias`` (101,), ``x_offset``),
  made from MAGVIT's flax checkpoint ``c3d_ucf101.flax`` by ``walt-bench eval convert-c3d`` (kernels moved from
  (kT, kH, kW, in, out) to (out, in, kT, kH, kW), dense kernels from (in, out) to (out, in);
  :mod:`walt_bench.evaluation.convert`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from walt_bench.evaluation.resize import resize_bilinear_aligned

C3D_FRAMES = 16
C3D_SIZE = 112
UCF101_CLASSES = 101


class C3D(nn.Module):
    """(B, T=16, 3, H, W) RGB in [-1, 1] -> {"features": fc7 (B, 4096), "logits": fc8 (B, 101)}."""

    CONVS = ("conv1a", "conv2a", "conv3a", "conv3b", "conv4a", "conv4b", "conv5a", "conv5b")
    DENSES = ("fc6", "fc7", "fc8")

    def __init__(
        self,
        num_classes: int = UCF101_CLASSES,
        num_frames: int = C3D_FRAMES,
        size: int = C3D_SIZE,
        base: int = 64,
        hidden: int = 4096,
    ):
        """The reference network is the default; ``base`` (conv1a width) and ``hidden`` (fc6/fc7 width) shrink
        it for tests of the loading code."""
        super().__init__()
        b = base
        widths = [("conv1a", 3, b), ("conv2a", b, 2 * b), ("conv3a", 2 * b, 4 * b), ("conv3b", 4 * b, 4 * b)]
        widths += [("conv4a", 4 * b, 8 * b), ("conv4b", 8 * b, 8 * b), ("conv5a", 8 * b, 8 * b)]
        widths += [("conv5b", 8 * b, 8 * b)]
        for name, cin, cout in widths:
            setattr(self, name, nn.Conv3d(cin, cout, 3, padding=1))
        flat = 8 * b * max(num_frames // 16, 1) * ((size // 16 + 1) // 2) ** 2
        self.fc6, self.fc7, self.fc8 = (
            nn.Linear(flat, hidden),
            nn.Linear(hidden, hidden),
            nn.Linear(hidden, num_classes),
        )
        self.register_buffer("x_offset", torch.zeros(num_frames, size, size, 3))
        self.size = size

    def preprocess(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) in [-1, 1] -> (B, 3, T, 112, 112) demeaned BGR in the [0, 255] scale."""
        x = (video.float() + 1.0) / 2.0
        x = x.flip(2)  # RGB -> BGR: the Caffe/Chainer model was trained on BGR frames
        x = resize_bilinear_aligned(x, (self.size, self.size)) * 255.0
        x = x + self.x_offset.permute(0, 3, 1, 2)  # (T, 3, 112, 112)
        return x.permute(0, 2, 1, 3, 4)  # (B, 3, T, H, W)

    def forward(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.preprocess(video)
        x = F.max_pool3d(F.relu(self.conv1a(x)), (1, 2, 2))
        x = F.max_pool3d(F.relu(self.conv2a(x)), 2)
        x = F.max_pool3d(F.relu(self.conv3b(F.relu(self.conv3a(x)))), 2)
        x = F.max_pool3d(F.relu(self.conv4b(F.relu(self.conv4a(x)))), 2)
        x = F.relu(self.conv5b(F.relu(self.conv5a(x))))
        x = F.max_pool3d(F.pad(x, (0, 1, 0, 1)), 2)  # (B, 512, 1, 4, 4) for 16x112x112 (C, T, H, W order)
        features = F.relu(self.fc7(F.relu(self.fc6(x.flatten(1)))))
        return {"features": features, "logits": self.fc8(features)}
