"""Where `edgecv calibrate`'s time goes, on a YOLOv8n-size detector (random weights; timing needs the size only).

    .venv/bin/python scripts/bench_calibrate.py --imgsz 640 --num 512 --holdout 100 [--max-drop 1]

Builds (once, cached under --work) a network with YOLOv8n's exact layer structure and
size (3.2 M parameters, 8.7 GFLOPs at 640: Conv/C2f/SPPF backbone + PAN neck + DFL
decoupled head, 80 classes, output (1, 84, 8400)) exported with torch's TorchScript
exporter as a foreign ONNX (no edgecv metadata, like an Ultralytics export), writes
synthetic shape images, then runs ``edgecv.quant.calibrate`` and prints the report's
``seconds`` split (statistics pass, FP32 reference, per-target scoring and gate, with
the gate's own split: graph builds, held-out inference, NMS/matching, bootstrap intervals;
sensitivity vs trials, how many trials, how many stopped early because they could no
longer pass) and the wall time.
The machine this ran on is shared; compare splits from one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path


def build_yolov8n(path: Path, imgsz: int, *, seed: int = 0) -> Path:
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class Conv(nn.Module):
        def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1) -> None:
            super().__init__()
            self.conv = nn.Conv2d(c1, c2, k, s, k // 2)
            self.act = nn.SiLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.conv(x))

    class Bottleneck(nn.Module):
        def __init__(self, c: int, shortcut: bool) -> None:
            super().__init__()
            self.cv1, self.cv2, self.add = Conv(c, c, 3), Conv(c, c, 3), shortcut

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.cv2(self.cv1(x))
            return x + y if self.add else y

    class C2f(nn.Module):
        def __init__(self, c1: int, c2: int, n: int, shortcut: bool) -> None:
            super().__init__()
            self.c = c2 // 2
            self.cv1 = Conv(c1, 2 * self.c)
            self.cv2 = Conv((2 + n) * self.c, c2)
            self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = list(self.cv1(x).chunk(2, 1))
            y.extend(m(y[-1]) for m in self.m)
            return self.cv2(torch.cat(y, 1))

    class SPPF(nn.Module):
        def __init__(self, c1: int, c2: int) -> None:
            super().__init__()
            c = c1 // 2
            self.cv1, self.cv2, self.m = Conv(c1, c), Conv(4 * c, c2), nn.MaxPool2d(5, 1, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.cv1(x)
            y1 = self.m(x)
            y2 = self.m(y1)
            return self.cv2(torch.cat([x, y1, y2, self.m(y2)], 1))

    class YOLOv8n(nn.Module):
        nc, reg_max, strides = 80, 16, (8, 16, 32)

        def __init__(self) -> None:
            super().__init__()
            self.b = nn.ModuleList([
                Conv(3, 16, 3, 2), Conv(16, 32, 3, 2), C2f(32, 32, 1, True), Conv(32, 64, 3, 2), C2f(64, 64, 2, True),
                Conv(64, 128, 3, 2), C2f(128, 128, 2, True), Conv(128, 256, 3, 2), C2f(256, 256, 1, True), SPPF(256, 256),
            ])  # fmt: skip
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.h1, self.h2 = C2f(384, 128, 1, False), C2f(192, 64, 1, False)
            self.d1, self.h3 = Conv(64, 64, 3, 2), C2f(192, 128, 1, False)
            self.d2, self.h4 = Conv(128, 128, 3, 2), C2f(384, 256, 1, False)
            c2, c3 = 64, 80
            self.cv2 = nn.ModuleList(nn.Sequential(Conv(c, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * self.reg_max, 1)) for c in (64, 128, 256))
            self.cv3 = nn.ModuleList(nn.Sequential(Conv(c, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, self.nc, 1)) for c in (64, 128, 256))
            self.register_buffer("proj", torch.arange(self.reg_max, dtype=torch.float32))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            feats = []
            for m in self.b:
                x = m(x)
                feats.append(x)
            p3, p4, p5 = feats[4], feats[6], feats[9]
            n4 = self.h1(torch.cat([self.up(p5), p4], 1))
            o3 = self.h2(torch.cat([self.up(n4), p3], 1))
            o4 = self.h3(torch.cat([self.d1(o3), n4], 1))
            o5 = self.h4(torch.cat([self.d2(o4), p5], 1))
            boxes, scores = [], []
            for i, (f, s) in enumerate(zip((o3, o4, o5), self.strides)):
                b, _, h, w = f.shape
                dist = self.cv2[i](f).view(b, 4, self.reg_max, h * w).softmax(2)
                dist = (dist * self.proj.view(1, 1, -1, 1)).sum(2)  # DFL: (b, 4, hw)
                ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
                anchor = torch.stack([xs.reshape(-1), ys.reshape(-1)]) + 0.5  # (2, hw)
                lt, rb = dist[:, :2], dist[:, 2:]
                xy = (anchor + (rb - lt) / 2) * s
                wh = (lt + rb) * s
                boxes.append(torch.cat([xy, wh], 1))
                scores.append(self.cv3[i](f).view(b, self.nc, h * w).sigmoid())
            return torch.cat([torch.cat(boxes, 2), torch.cat(scores, 2)], 1)

    model = YOLOv8n().eval()
    with torch.no_grad():  # LSUV-style: each conv's output centred, unit std (random convs shrink the signal)
        x = torch.rand(2, 3, imgsz, imgsz)
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        for conv in convs:
            seen: list[torch.Tensor] = []
            handle = conv.register_forward_hook(lambda _m, _i, out, seen=seen: seen.append(out))
            model(x)
            handle.remove()
            out = seen[0]
            std = out.std() + 1e-6
            conv.weight.div_(std)
            conv.bias.sub_(out.mean(dim=(0, 2, 3))).div_(std)
        for seq in model.cv3:  # class logits: std 1.3, bias -11 (a few anchors above 0.25, hundreds above 0.001)
            seq[-1].weight.mul_(1.3)
            nn.init.constant_(seq[-1].bias, -11.0)
        for seq in model.cv2:  # box distributions: peaky enough to give boxes of varied size
            seq[-1].weight.mul_(2.0)
    x = torch.rand(1, 3, imgsz, imgsz)
    params = sum(p.numel() for p in model.parameters())
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (x,), str(path), input_names=["images"], output_names=["output0"], opset_version=17, dynamo=False)
    logging.getLogger(__name__).info("YOLOv8n-size model: %.2f M parameters -> %s", params / 1e6, path)
    return path


def _update_before(self, values, *, histogram=True, scratch=None):  # type: ignore[no-untyped-def]
    """TensorStats.update as it was before this change (five passes, int64 indices), for the A/B below."""
    import numpy as np

    from edgecv.quant.ranges import MAX_BINS

    x = np.abs(np.asarray(values, np.float32).ravel())
    if not x.size:
        return
    finite = np.isfinite(x)
    if not finite.all():
        x = x[finite]
        values = np.asarray(values).ravel()[finite]
    self.min = min(self.min, float(np.min(values)))
    self.max = max(self.max, float(np.max(values)))
    self.count += x.size
    top = float(x.max())
    if self.width == 0.0:
        if top == 0.0:
            self.hist = np.array([self.hist.sum() + x.size], np.int64) if self.hist.size else np.array([x.size], np.int64)
            return
        zeros = int(self.hist.sum()) if self.hist.size else 0
        self.width = top / MAX_BINS
        self.hist = np.zeros(MAX_BINS, np.int64)
        self.hist[0] = zeros
    needed = int(top / self.width) + 1
    if needed > self.hist.size:
        while needed > MAX_BINS:
            self._merge_pairs()
            needed = int(top / self.width) + 1
        self.hist = np.concatenate([self.hist, np.zeros(needed - self.hist.size, np.int64)])
    idx = np.minimum((x / np.float32(self.width)).astype(np.int64), self.hist.size - 1)
    self.hist += np.bincount(idx, minlength=self.hist.size)


def ab_statistics(model: Path, images: Path, imgsz: int, count: int, rounds: int = 2) -> dict[str, float]:
    """Seconds per image of the statistics pass: before (every activation, histograms of all, old update)
    vs after (only the tensors the TensorRT graph quantizes get histograms; min/max of the rest for the
    TensorRT cache) vs after without the cache (only those tensors). Alternated in one run."""
    import onnx

    from edgecv.quant import calib_data, qdq
    from edgecv.quant.calibrate import calibration_meta
    from edgecv.quant.collect import collect_stats
    from edgecv.quant.ranges import TensorStats

    meta = calibration_meta(model, task="detect", names=tuple(f"class{i}" for i in range(80)), imgsz=(imgsz, imgsz))
    prepared = qdq.prepare(onnx.load(str(model)))
    files = calib_data.gather(images, num=count, holdout=0, seed=0).calibration
    feeds = list(calib_data.tensors(files, meta, []))
    needed = qdq.range_tensors(prepared, ["tensorrt"])
    after_update = TensorStats.update
    times: dict[str, list[float]] = {"before": [], "after (with cache)": [], "after (no cache)": []}
    for _ in range(rounds):
        for name in times:
            TensorStats.update = _update_before if name == "before" else after_update  # type: ignore[method-assign]
            kwargs = {} if name == "before" else {"histogram": needed} if "with" in name else {"tensors": needed}
            start = time.perf_counter()
            collect_stats(prepared, iter(feeds), **kwargs)
            times[name].append((time.perf_counter() - start) / len(feeds))
    TensorStats.update = after_update  # type: ignore[method-assign]
    return {k: round(min(v), 4) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--num", type=int, default=512)
    parser.add_argument("--holdout", type=int, default=100)
    parser.add_argument("--max-drop", type=float, default=None)
    parser.add_argument("--method", default="percentile")
    parser.add_argument("--work", type=Path, default=Path("/tmp/edgecv-bench-calibrate"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--ab-stats", type=int, default=0, help="only compare the statistics pass before/after on this many images")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from edgecv.quant.calibrate import CalibrateOptions, calibrate, calibration_meta

    model = args.work / f"yolov8n-{args.imgsz}.onnx"
    if not model.is_file():
        build_yolov8n(model, args.imgsz)
    images = args.work / "images"
    if not (images / "images").is_dir() or len(list((images / "images").iterdir())) < args.num + args.holdout:
        from edgecv.data.synthetic import write_coco_dataset

        write_coco_dataset(images, args.num + args.holdout, seed=3)
    if args.ab_stats:
        print(json.dumps({"imgsz": args.imgsz, "seconds_per_image": ab_statistics(model, images / "images", args.imgsz, args.ab_stats)}))
        return
    names = tuple(f"class{i}" for i in range(80))
    meta = calibration_meta(model, task="detect", names=names, imgsz=(args.imgsz, args.imgsz))
    options = CalibrateOptions(
        num=args.num, holdout=args.holdout, max_drop=args.max_drop, method=args.method, bench_iterations=0, threads=args.threads
    )
    start = time.perf_counter()
    report = calibrate(model, images / "images", options, meta=meta, output=args.work / f"yolov8n-{args.imgsz}.int8.onnx")
    wall = time.perf_counter() - start
    gates = {}
    for target in report.targets:
        if target.gate:
            trials = target.gate["trials"]
            gates[target.target] = {
                "seconds": target.gate["seconds"],
                "verdict": target.verdict,
                "layers_float": len(target.kept_float_layers),
                "trials": len(trials),
                "stopped_early": sum("stopped_after_images" in t for t in trials),
                "scored_on_all_images": sum(t["full_score"] is not None for t in trials),
            }
    print(json.dumps({"imgsz": args.imgsz, "calibration": report.data["calibration_images"], "holdout": report.data["holdout_images"],
                      "wall_s": round(wall, 1), "seconds": {k: round(v, 1) for k, v in report.seconds.items()}, "gate": gates}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
