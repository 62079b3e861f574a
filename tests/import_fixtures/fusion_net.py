"""A hand-written multi-scale fusion network for tests/test_import.py (no timm): an RMS norm module of its own,
GELU (tanh), two stages whose outputs are concatenated (the later one resized nearest to the earlier one's
H×W), a 1×1 conv on the concat, a resize to a fixed 4×4 (average pool when divisible, else bilinear, as
timm's MobileNetV5 adapter does), a standalone RMS norm, a global mean and a linear classifier."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class RmsNorm2d(nn.Module):
    """x · rsqrt(mean_c(x²) + eps) · γ over the channels of an N×C×H×W map (timm's RmsNorm2d, by name)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)
        return x * self.weight.view(1, -1, 1, 1)


def _conv(cin: int, cout: int, k: int, s: int, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class FusionNet(nn.Module):
    def __init__(self, classes: int = 5, size: int = 4) -> None:
        super().__init__()
        self.size = size
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=True), RmsNorm2d(8), nn.GELU(approximate="tanh"))
        self.s1 = _conv(8, 16, 3, 2)
        self.s2 = _conv(16, 24, 3, 2)
        self.ffn = _conv(40, 32, 1, 1)
        self.norm = RmsNorm2d(32)
        self.fc = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.s1(self.stem(x))
        b = self.s2(a)
        y = torch.cat([a, F.interpolate(b, size=a.shape[-2:], mode="nearest")], dim=1)
        y = self.ffn(y)
        h, w = y.shape[-2:]
        if h % self.size == 0 and w % self.size == 0:
            y = F.avg_pool2d(y, kernel_size=(h // self.size, w // self.size))
        else:
            y = F.interpolate(y, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.fc(self.norm(y).mean((2, 3)))


def build() -> FusionNet:
    """The network with a fixed seed."""
    torch.manual_seed(0)
    return FusionNet()
