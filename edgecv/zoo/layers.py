"""Building blocks shared by the shipped models (YOLOv8-style Conv-BN-SiLU and C2f)."""

from __future__ import annotations

import functools
from types import SimpleNamespace

from edgecv._optional import require


@functools.cache
def layers() -> SimpleNamespace:
    """The torch modules, defined on first use so that importing edgecv never imports torch."""
    torch = require("torch")
    nn = torch.nn

    class ConvBNAct(nn.Module):
        def __init__(self, c_in: int, c_out: int, k: int = 3, s: int = 1) -> None:
            super().__init__()
            self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False)
            self.bn = nn.BatchNorm2d(c_out)
            self.act = nn.SiLU(inplace=True)

        def forward(self, x):  # type: ignore[no-untyped-def]
            return self.act(self.bn(self.conv(x)))

    class Bottleneck(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.cv1 = ConvBNAct(c, c, 3)
            self.cv2 = ConvBNAct(c, c, 3)

        def forward(self, x):  # type: ignore[no-untyped-def]
            return x + self.cv2(self.cv1(x))

    class C2f(nn.Module):
        """Split, run n bottlenecks on one half, concat every intermediate, fuse (as in YOLOv8)."""

        def __init__(self, c_in: int, c_out: int, n: int = 1) -> None:
            super().__init__()
            self.hidden = c_out // 2
            self.cv1 = ConvBNAct(c_in, 2 * self.hidden, 1)
            self.blocks = nn.ModuleList(Bottleneck(self.hidden) for _ in range(n))
            self.cv2 = ConvBNAct((2 + n) * self.hidden, c_out, 1)

        def forward(self, x):  # type: ignore[no-untyped-def]
            parts = list(self.cv1(x).chunk(2, 1))
            for block in self.blocks:
                parts.append(block(parts[-1]))
            return self.cv2(torch.cat(parts, 1))

    return SimpleNamespace(torch=torch, nn=nn, ConvBNAct=ConvBNAct, Bottleneck=Bottleneck, C2f=C2f)
