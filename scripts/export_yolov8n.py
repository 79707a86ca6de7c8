"""Export a real-size YOLOv8n (random weights, no download) to ONNX for loop benchmarks.

Needs the ``ultralytics`` package, which pulls ``opencv-python``: run it from a separate venv
(``python3 -m venv .venv-ul && .venv-ul/bin/pip install torch==2.13.0 ultralytics onnx``)::

    .venv-ul/bin/python scripts/export_yolov8n.py out/yolov8n-320.onnx
    .venv/bin/edgecv export out/yolov8n-320.onnx -o out/yolov8n-320.edgecv.onnx

The weights are random (the architecture, FLOPs and speed are YOLOv8n's; the detections mean
nothing). Ultralytics' dynamic export leaves every output dimension symbolic; the channel
dimension (4 + classes) is fixed here so the layout can be recognised.

Without ultralytics, ``--torch`` builds the same layer structure in plain torch (the main venv
has it) and exports it with a static input, as ``scripts/bench_calibrate.py`` does::

    .venv/bin/python scripts/export_yolov8n.py out/yolov8n-320.onnx 320 --torch
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--torch"]
    out = Path(args[0] if args else "out/yolov8n-320.onnx").resolve()
    imgsz = int(args[1]) if len(args) > 1 else 320
    if "--torch" in sys.argv:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_calibrate import build_yolov8n

        out.parent.mkdir(parents=True, exist_ok=True)
        print(build_yolov8n(out, imgsz))
        return
    import onnx
    from ultralytics import YOLO

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model = YOLO("yolov8n.yaml")  # built from the yaml: random weights, nothing downloaded
        exported = Path(model.export(format="onnx", imgsz=imgsz, dynamic=True, simplify=False, project=tmp))
        graph = onnx.load(str(exported))
        channels = 4 + len(model.names)
        graph.graph.output[0].type.tensor_type.shape.dim[1].dim_value = channels
        onnx.save(graph, str(exported))
        shutil.move(str(exported), out)
    print(out)


if __name__ == "__main__":
    main()
