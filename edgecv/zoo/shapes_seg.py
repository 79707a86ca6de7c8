"""``shapes-seg``: a small U-Net-like semantic segmenter on the ``shapes-det`` body.

The encoder is the detector's backbone + PAN neck (strides 4-32), so it can start
from the trained detector's weights (``TrainConfig.init_from``): telling a star
from a circle needs a receptive field and features that the detector already
has. A decoder with skip connections goes back to stride 4, and the logits are
upsampled to input resolution in the graph.
"""

from __future__ import annotations

from edgecv.zoo.layers import layers
from edgecv.zoo.shapes_det import body_class, channels


def build(num_classes: int, width: float = 1.0):  # type: ignore[no-untyped-def]
    """A new segmenter (``torch.nn.Module``): (B, 3, H, W) float RGB in [0, 1] -> (B, nc, H, W) logits."""
    L = layers()
    torch, nn, Conv, C2f = L.torch, L.nn, L.ConvBNAct, L.C2f
    F = torch.nn.functional
    _, c2, c3, c4, c5 = channels(width)

    def up(a, b):  # type: ignore[no-untyped-def]
        return torch.cat([F.interpolate(a, size=b.shape[-2:], mode="bilinear", align_corners=False), b], 1)

    class ShapesSegmenter(body_class()):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(width)
            self.num_classes = num_classes
            self.dec4 = C2f(c5 + c4, c4)
            self.dec3 = C2f(c4 + c3, c3)
            self.dec2 = C2f(c3 + c2, c2)
            self.seg_head = nn.Sequential(Conv(c2, c2, 3), nn.Conv2d(c2, num_classes, 1))

        def forward(self, x):  # type: ignore[no-untyped-def]
            s4, n3, n4, n5 = self.features(x)
            d = self.dec2(up(self.dec3(up(self.dec4(up(n5, n4)), n3)), s4))
            return F.interpolate(self.seg_head(d), size=x.shape[-2:], mode="bilinear", align_corners=False)

    return ShapesSegmenter()
