"""`edgecv info` and `edgecv shapes`: what a model knows about itself; synthetic data."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from edgecv.cli.app import app, handle_errors, state
from edgecv.errors import ConfigError
from edgecv.log import out, progress_bar

log = logging.getLogger("edgecv.cli")

# ---------------------------------------------------------------- info
@app.command()
@handle_errors
def info(
    model: Annotated[Path, typer.Argument(help="Model file (.onnx, .engine).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show what a model knows about itself: task, classes, preprocessing, inputs and outputs."""
    from edgecv.engine.registry import describe_model

    details = describe_model(model)
    if as_json:
        out.print_json(json.dumps(details))
        return
    from rich.table import Table

    table = Table(title=str(model), show_header=False, title_justify="left")
    for key, value in details.items():
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], dict):
            value = "\n".join(", ".join(f"{k}={v}" for k, v in item.items()) for item in value)
        elif isinstance(value, dict):
            value = "\n".join(f"{k}: {v}" for k, v in value.items()) or "-"
        elif isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value))
        table.add_row(key, str(value))
    out.print(table)
    int8 = (details.get("extra") or {}).get("int8")
    if isinstance(int8, dict):
        from edgecv.cli.quant import int8_lines

        for line in int8_lines(int8):
            out.print(line, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- synthetic data
@app.command()
@handle_errors
def shapes(
    output: Annotated[Path, typer.Argument(help="Output folder.")],
    images: Annotated[int, typer.Option(help="Number of images.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed (the training set uses 0; pick another for held-out data).")] = 1,
    video: Annotated[bool, typer.Option(help="Also write a demo video (demo.mp4 + ground truth).")] = False,
) -> None:
    """Generate a synthetic shapes dataset (COCO boxes, instance and semantic masks) for tests and demos."""
    from edgecv.data.synthetic import write_coco_dataset, write_demo_video

    if images <= 0:
        raise ConfigError(f"--images must be positive, got {images}")
    output.mkdir(parents=True, exist_ok=True)
    with progress_bar("shapes", images, state["quiet"]) as update:
        ann = write_coco_dataset(output, images, seed=seed, progress=update)
    out.print(f"wrote {images} images and {ann}")
    if video:
        path = write_demo_video(output / "demo.mp4", seed=seed)
        out.print(f"wrote {path}")


