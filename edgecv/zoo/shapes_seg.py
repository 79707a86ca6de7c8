"""``shapes-seg``: a small U-Net-like semantic segmenter (encoder /16, skip connections, full-res logits)."""

from __future__ import annotations

from edgecv.zoo.layers import layers


def build(num_classes: int, width: float = 1.0):  # type: ignore[no-untyped-def]
    """A new, randomly initialised segmenter (``torch.nn.Module``): (B, 3, H, W) -> (B, nc, H, W) logits."""
    L = layers()
    torch, nn, Conv, C2f = L.torch, L.nn, L.ConvBNAct, L.C2f
    F = torch.nn.functional

    def ch(c: int) -> int:
        return max(8, int(round(c * width / 8)) * 8)

    c1, c2, c3, c4 = ch(16), ch(32), ch(64), ch(96)

    class ShapesSegmenter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.num_classes = num_classes
            self.enc1 = nn.Sequential(Conv(3, c1, 3, 2), Conv(c1, c1, 3))
            self.enc2 = nn.Sequential(Conv(c1, c2, 3, 2), C2f(c2, c2))
            self.enc3 = nn.Sequential(Conv(c2, c3, 3, 2), C2f(c3, c3))
            self.enc4 = nn.Sequential(Conv(c3, c4, 3, 2), C2f(c4, c4))
            self.dec3 = C2f(c4 + c3, c3)
            self.dec2 = C2f(c3 + c2, c2)
            self.dec1 = Conv(c2 + c1, c1, 3)
            self.full = nn.Sequential(Conv(c1 + 3, c1, 3), nn.Conv2d(c1, num_classes, 1))

        def forward(self, x):  # type: ignore[no-untyped-def]
            e1 = self.enc1(x)
            e2 = self.enc2(e1)
            e3 = self.enc3(e2)
            e4 = self.enc4(e3)

            def up(a, b):  # type: ignore[no-untyped-def]
                return torch.cat([F.interpolate(a, size=b.shape[-2:], mode="bilinear", align_corners=False), b], 1)

            d3 = self.dec3(up(e4, e3))
            d2 = self.dec2(up(d3, e2))
            d1 = self.dec1(up(d2, e1))
            return self.full(up(d1, x))

    return ShapesSegmenter()
