"""Write the model card of a shipped model: architecture, size, FLOPs, training, held-out accuracy.

    python scripts/model_card.py shapes-det      # -> models/shapes-det.md

Accuracy is measured with `edgecv eval` code on a held-out synthetic set generated with a
seed the training never used (`edgecv shapes data/shapes-val --images 300 --seed 1234`).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import onnxruntime as ort
import torch
from torch.utils.flop_counter import FlopCounterMode

import edgecv
from edgecv import assets
from edgecv.bench.accuracy import evaluate
from edgecv.data.datasets import open_dataset
from edgecv.data.synthetic import write_coco_dataset
from edgecv.zoo.checkpoint import load_checkpoint
from edgecv.zoo.registry import get_architecture

VAL_SEED, VAL_IMAGES = 1234, 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=["shapes-det", "shapes-seg"])
    args = parser.parse_args()
    ckpt, onnx_path = assets.shipped(args.name, ".pt"), assets.shipped(args.name)
    model, info = load_checkpoint(ckpt)
    arch = get_architecture(info["arch"])
    h, w = arch.input_size
    params = sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, h, w))
    gflops = counter.get_total_flops() / 1e9
    with tempfile.TemporaryDirectory() as tmp:
        write_coco_dataset(Path(tmp), VAL_IMAGES, seed=VAL_SEED)
        loaded = edgecv.load(onnx_path, conf=0.001, iou=0.6, threads=2) if arch.task == "detect" else edgecv.load(onnx_path, threads=2)
        metrics = evaluate(loaded, open_dataset(tmp)).to_dict()
    if arch.task == "detect":
        acc = (
            f"| mAP@0.5:0.95 | {metrics['map']:.3f} |\n| mAP@0.5 | {metrics['map50']:.3f} |\n| mAP@0.75 | {metrics['map75']:.3f} |\n"
            + "".join(f"| AP {n} | {v:.3f} |\n" for n, v in metrics["per_class_ap"].items())
        )
        eval_cmd = f"edgecv eval models/{args.name}.onnx --data data/shapes-val"
    else:
        acc = (
            f"| mIoU | {metrics['miou']:.3f} |\n| pixel accuracy | {metrics['pixel_accuracy']:.3f} |\n| mean Dice | {metrics['mean_dice']:.3f} |\n"
            + "".join(f"| IoU {n} | {v:.3f} |\n" for n, v in metrics["per_class_iou"].items())
        )
        eval_cmd = f"edgecv eval models/{args.name}.onnx --data data/shapes-val"
    i = info["info"]
    card = f"""# {args.name}

{arch.description}. Task: **{arch.task}**; classes: {", ".join(info["names"])}.

| | |
|---|---|
| architecture | `{arch.builder}` (width {info["width"]}) |
| parameters | {params / 1e6:.3f} M |
| FLOPs at {h}x{w} | {gflops:.2f} GFLOPs (multiply-adds x 2, `torch.utils.flop_counter`) |
| input | (N, 3, H, W) float32 RGB in [0, 1], letterboxed (pad 114); H, W dynamic, multiples of {arch.stride} |
| output | `{arch.output_format}` {"(N, 4 + 4, anchors): cx, cy, w, h in input pixels, then class scores (Ultralytics YOLOv8 layout)" if arch.task == "detect" else "(N, 5, H, W) class logits"} |
| files | `{ckpt.name}` ({ckpt.stat().st_size / 1e6:.1f} MB, weights-only checkpoint, float16 storage), `{onnx_path.name}` ({onnx_path.stat().st_size / 1e6:.1f} MB, opset 18, edgecv metadata) |
| training | `{i.get("train_command")}` — {i.get("iterations")} iterations, seed {i.get("seed")}, {i.get("train_seconds", 0) / 60:.1f} min on 2 CPU cores |
| export | `edgecv export models/{ckpt.name} -o models/{onnx_path.name}` |

## Accuracy on held-out data

{VAL_IMAGES} synthetic images never seen in training (`edgecv shapes data/shapes-val --images {VAL_IMAGES} --seed {VAL_SEED}`),
ONNX Runtime CPU, measured with `{eval_cmd}`{" (conf 0.001, NMS IoU 0.6)" if arch.task == "detect" else ""}:

| metric | value |
|---|---|
{acc}
Data: textured, noisy backgrounds; circles/ellipses, rectangles, triangles and stars in random colors,
sizes, aspect ratios and orientations, partly occluding each other (`edgecv.data.synthetic`).
onnxruntime {ort.__version__}, torch {torch.__version__}.
"""
    out = assets.models_dir() / f"{args.name}.md"
    out.write_text(card)
    print(card)


if __name__ == "__main__":
    main()
