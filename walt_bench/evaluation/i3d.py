"""Inflated 3D ConvNet (I3D, Carreira & Zisserman 2017), Kinetics-400 classifier behind FVD.

:class:`InceptionI3d` follows DeepMind's ``kinetics-i3d`` graph (the TF-Hub module of the reference FVD)
with TF "SAME" padding and Sonnet's BatchNorm eps 1e-3 (the PyTorch port uses 1e-5), and its parameter names are those of the widely used PyTorch
port (``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1b.bn.running_mean``, ``logits.conv3d.bias``, ...),
so converted Kinetics-400 state dicts load directly. Input ``(B, 3, T, 224, 224)`` RGB in [-1, 1]; output
the 400 Kinetics logits averaged over time (the "default" output of the TF-Hub module that FVD uses).

For inputs smaller than 224x224 (tests, small-scale runs) the final average pool shrinks to fit; at 224x224
and 16 frames it is the reference ``[2, 7, 7]`` VALID pool.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KINETICS_CLASSES = 400


def same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME' padding (front, back) along one axis."""
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel, stride) -> torch.Tensor:
    t, h, w = x.shape[-3:]
    pt, ph, pw = (same_pad(s, k, st) for s, k, st in zip((t, h, w), kernel, stride))
    return F.pad(x, (*pw, *ph, *pt))


class MaxPool3dSame(nn.Module):
    """Max pool with TF 'SAME' padding (zeros, as the inputs are post-ReLU)."""

    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class Unit3D(nn.Module):
    """Conv3d ('SAME') + BatchNorm + ReLU; the logits layer has a bias and neither BN nor ReLU."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), *, norm_act: bool = True):
        super().__init__()
        self.kernel, self.stride, self.norm_act = tuple(kernel), tuple(stride), norm_act
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, bias=not norm_act)
        if norm_act:
            self.bn = nn.BatchNorm3d(cout, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        return F.relu(self.bn(x)) if self.norm_act else x


class InceptionModule(nn.Module):
    """Four branches: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 | maxpool 3x3 -> 1x1, concatenated on channels."""

    def __init__(self, cin: int, widths: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.b0 = Unit3D(cin, widths[0])
        self.b1a, self.b1b = Unit3D(cin, widths[1]), Unit3D(widths[1], widths[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, widths[3]), Unit3D(widths[3], widths[4], (3, 3, 3))
        self.b3a, self.b3b = MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, widths[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


# (name, input channels, branch widths) of the mixed blocks; pools sit between them.
_MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


class InceptionI3d(nn.Module):
    """I3D RGB stream: (B, 3, T, H, W) in [-1, 1] -> (B, num_classes) logits averaged over time."""

    def __init__(self, num_classes: int = KINETICS_CLASSES):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b, self.Mixed_3c = (InceptionModule(*_MIXED[k]) for k in ("Mixed_3b", "Mixed_3c"))
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b, self.Mixed_4c, self.Mixed_4d, self.Mixed_4e, self.Mixed_4f = (
            InceptionModule(*_MIXED[f"Mixed_4{s}"]) for s in "bcdef"
        )
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b, self.Mixed_5c = (InceptionModule(*_MIXED[k]) for k in ("Mixed_5b", "Mixed_5c"))
        self.logits = Unit3D(1024, num_classes, norm_act=False)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, 3, T, H, W); spatial /32 and temporal /8 by the end of the stack
        x = self.MaxPool3d_2a_3x3(self.Conv3d_1a_7x7(x))
        x = self.MaxPool3d_3a_3x3(self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x)))
        x = self.MaxPool3d_4a_3x3(self.Mixed_3c(self.Mixed_3b(x)))
        for block in (self.Mixed_4b, self.Mixed_4c, self.Mixed_4d, self.Mixed_4e, self.Mixed_4f):
            x = block(x)
        x = self.Mixed_5c(self.Mixed_5b(self.MaxPool3d_5a_2x2(x)))  # (B, 1024, T/8, H/32, W/32)
        kernel = tuple(min(k, s) for k, s in zip((2, 7, 7), x.shape[-3:]))
        x = F.avg_pool3d(x, kernel, stride=1)  # reference: VALID [2, 7, 7]
        logits = self.logits(x)  # (B, classes, t, h, w); h = w = 1 at 224x224
        return logits.mean(dim=(2, 3, 4))  # time-averaged logits
