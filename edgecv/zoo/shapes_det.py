"""``shapes-det``: a small anchor-free detector whose output uses the Ultralytics YOLOv8 layout.

Backbone and PAN neck of Conv-BN-SiLU and C2f blocks (:func:`body_class`, shared
with ``shapes-seg``), three levels (strides 8, 16, 32), decoupled box / class
heads. Boxes are regressed as distances (left, top, right, bottom) from each
anchor point. ``forward`` returns ``(B, 4 + nc, A)``: cx, cy, w, h in input
pixels, then per-class sigmoid scores — exactly what Ultralytics YOLOv8/11 ONNX
files output, so real YOLO models decode with the same host code.
"""

from __future__ import annotations

import functools
from typing import Any

from edgecv.zoo.layers import layers

STRIDES = (8, 16, 32)


def channels(width: float) -> tuple[int, int, int, int, int]:
    """Channel counts of the body's five stages at a width multiplier (multiples of 8)."""
    return tuple(max(8, int(round(c * width / 8)) * 8) for c in (16, 32, 64, 96, 128))  # type: ignore[return-value]


@functools.cache
def body_class() -> Any:
    """The backbone + PAN neck as an ``nn.Module`` class, ``Body(width)``; ``features(x)`` -> [s4, n3, n4, n5]."""
    L = layers()
    torch, nn, Conv, C2f = L.torch, L.nn, L.ConvBNAct, L.C2f
    F = torch.nn.functional

    class Body(nn.Module):
        def __init__(self, width: float) -> None:
            super().__init__()
            c1, c2, c3, c4, c5 = channels(width)
            self.stem = nn.Sequential(Conv(3, c1, 3, 2), Conv(c1, c2, 3, 2), C2f(c2, c2))
            self.down3 = nn.Sequential(Conv(c2, c3, 3, 2), C2f(c3, c3, 2))
            self.down4 = nn.Sequential(Conv(c3, c4, 3, 2), C2f(c4, c4, 2))
            self.down5 = nn.Sequential(Conv(c4, c5, 3, 2), C2f(c5, c5))
            self.top4 = C2f(c5 + c4, c4)
            self.top3 = C2f(c4 + c3, c3)
            self.bot4_down = Conv(c3, c3, 3, 2)
            self.bot4 = C2f(c3 + c4, c4)
            self.bot5_down = Conv(c4, c4, 3, 2)
            self.bot5 = C2f(c4 + c5, c5)

        def features(self, x):  # type: ignore[no-untyped-def]
            """Stride-4 stem features and the PAN outputs at strides 8, 16, 32."""
            s4 = self.stem(x)
            p3 = self.down3(s4)
            p4 = self.down4(p3)
            p5 = self.down5(p4)
            t4 = self.top4(torch.cat([F.interpolate(p5, size=p4.shape[-2:], mode="nearest"), p4], 1))
            n3 = self.top3(torch.cat([F.interpolate(t4, size=p3.shape[-2:], mode="nearest"), p3], 1))
            n4 = self.bot4(torch.cat([self.bot4_down(n3), t4], 1))
            n5 = self.bot5(torch.cat([self.bot5_down(n4), p5], 1))
            return [s4, n3, n4, n5]

    return Body


def build(num_classes: int, width: float = 1.0):  # type: ignore[no-untyped-def]
    """A new, randomly initialised detector (``torch.nn.Module``)."""
    L = layers()
    torch, nn, Conv = L.torch, L.nn, L.ConvBNAct
    F = torch.nn.functional
    _, _, c3, c4, c5 = channels(width)
    head_c = channels(width)[2]

    class Head(nn.Module):
        def __init__(self, c_in: int) -> None:
            super().__init__()
            self.box = nn.Sequential(Conv(c_in, head_c, 3), Conv(head_c, head_c, 3), nn.Conv2d(head_c, 4, 1))
            self.cls = nn.Sequential(Conv(c_in, head_c, 3), nn.Conv2d(head_c, num_classes, 1))

        def forward(self, x):  # type: ignore[no-untyped-def]
            return self.box(x), self.cls(x)

    class ShapesDetector(body_class()):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(width)
            self.num_classes = num_classes
            self.strides = STRIDES
            self.heads = nn.ModuleList([Head(c3), Head(c4), Head(c5)])
            prior = -4.6  # sigmoid(-4.6) ~= 0.01: the usual focal-loss prior for rare positives
            for head in self.heads:
                nn.init.constant_(head.cls[-1].bias, prior)

        def forward_raw(self, x):  # type: ignore[no-untyped-def]
            """Training view: (B, A, 4) ltrb distances in pixels, (B, A, nc) logits, (A, 2) anchors, (A, 1) strides."""
            dists, logits, anchors, strides = [], [], [], []
            for feat, head, stride in zip(self.features(x)[1:], self.heads, self.strides):
                box, cls = head(feat)
                h, w = feat.shape[-2:]
                ys = (torch.arange(h, dtype=x.dtype, device=x.device) + 0.5) * stride
                xs = (torch.arange(w, dtype=x.dtype, device=x.device) + 0.5) * stride
                gy, gx = torch.meshgrid(ys, xs, indexing="ij")
                anchors.append(torch.stack([gx, gy], -1).reshape(-1, 2))
                strides.append(torch.full_like(anchors[-1][:, :1], stride))
                dists.append(F.softplus(box).flatten(2).transpose(1, 2) * stride)
                logits.append(cls.flatten(2).transpose(1, 2))
            return torch.cat(dists, 1), torch.cat(logits, 1), torch.cat(anchors, 0), torch.cat(strides, 0)

        def forward(self, x):  # type: ignore[no-untyped-def]
            """(B, 3, H, W) float RGB in [0, 1] -> (B, 4 + nc, A): cx, cy, w, h (pixels), class scores."""
            dists, logits, anchors, _ = self.forward_raw(x)
            lt, rb = dists[..., :2], dists[..., 2:]
            xy1, xy2 = anchors - lt, anchors + rb
            out = torch.cat([(xy1 + xy2) / 2, xy2 - xy1, logits.sigmoid()], -1)
            return out.transpose(1, 2)

    return ShapesDetector()
