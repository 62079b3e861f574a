"""A hand-written MBConv network for tests/test_import.py: its own block classes (no torchvision, no timm),
SE with a Linear squeeze, odd strides and sizes, a residual, a depthwise-separable stem block and a custom head."""

from __future__ import annotations

import torch
from torch import nn


class SE(nn.Module):
    """Squeeze-excitation with nn.Linear (not 1×1 convs): mean → fc → SiLU → fc → sigmoid → x · gate."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, squeeze)
        self.fc2 = nn.Linear(squeeze, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3))
        s = torch.sigmoid(self.fc2(nn.functional.silu(self.fc1(s))))
        return x * s[:, :, None, None]


class MyMBConv(nn.Module):
    def __init__(self, cin: int, cout: int, expand: int, k: int, stride: int, squeeze: int | None) -> None:
        super().__init__()
        mid = cin * expand
        self.pw = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6())
        self.dw = nn.Sequential(
            nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.ReLU6()
        )
        self.se = SE(mid, squeeze) if squeeze else nn.Identity()
        self.pwl = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pwl(self.se(self.dw(self.pw(x))))
        return x + y if self.skip else y


class MyNet(nn.Module):
    def __init__(self, classes: int = 7) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.sep = nn.Sequential(
            nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU6(),
            nn.Conv2d(8, 12, 1, bias=False),
            nn.BatchNorm2d(12),
            nn.ReLU6(),
        )
        self.blocks = nn.Sequential(
            MyMBConv(12, 16, 4, 5, 3, 3),  # stride 3, SE squeeze 3 (no usual ratio)
            MyMBConv(16, 16, 3, 3, 1, 4),  # residual
            MyMBConv(16, 24, 6, 7, 2, None),
        )
        self.head = nn.Sequential(nn.Conv2d(24, 40, 1, bias=True), nn.Hardswish())
        self.fc = nn.Sequential(nn.Linear(40, 20), nn.Hardswish(), nn.Dropout(0.3), nn.Linear(20, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.sep(self.stem(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def build(classes: int = 7) -> nn.Module:
    """The test network (the CLI's ``tests.import_fixtures.custom_mbconv:build``)."""
    return MyNet(classes)


class Unsupported(nn.Module):
    """A conv, a ceil-mode max pool (which the spec cannot say) and a conv: the spec stops at the pool, naming it."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.b = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.pool(self.a(x)))


class Pooled(nn.Module):
    """conv → global average pool called one of three ways → linear."""

    HOWS = ("module", "functional", "mean")

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.how == "module":
            x = self.pool(x)
        elif self.how == "functional":
            x = nn.functional.adaptive_avg_pool2d(x, 1)
        else:
            x = x.mean((2, 3))
        return self.fc(x.flatten(1))


class MishNet(nn.Module):
    """conv → BN → Mish (an activation the spec cannot name): imported with the Mish reported."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.Mish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class ManyMish(nn.Module):
    """``n`` conv → BN → Mish units: n warnings, more than the CLI shows on stderr (its coverage line stays last)."""

    def __init__(self, n: int = 25) -> None:
        super().__init__()
        units = [nn.Sequential(nn.Conv2d(3 if i == 0 else 4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.Mish())
                 for i in range(n)]  # fmt: skip
        self.body = nn.Sequential(*units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
