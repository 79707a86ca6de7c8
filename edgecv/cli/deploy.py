"""`edgecv deploy`: serving configs for Triton Inference Server and DeepStream."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from edgecv.cli.app import app, handle_errors
from edgecv.cli.options import int_list
from edgecv.log import out

log = logging.getLogger("edgecv.cli")

deploy_app = typer.Typer(
    help="Serve models beyond one device: a Triton model repository, or a DeepStream nvinfer config.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(deploy_app, name="deploy")


@deploy_app.command("triton")
@handle_errors
def triton_cmd(
    models: Annotated[list[Path], typer.Argument(help="edgecv ONNX files and/or TensorRT engines (with their .json manifests).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The model repository folder (created; existing models of the same name are replaced).")],
    version: Annotated[int, typer.Option(help="Model version folder.")] = 1,
    instances: Annotated[int, typer.Option(help="Model instances per device (instance_group count).", rich_help_panel="Serving")] = 1,
    device: Annotated[str, typer.Option(help="gpu (KIND_GPU) or cpu (KIND_CPU; ONNX only).", rich_help_panel="Serving")] = "gpu",
    gpus: Annotated[str | None, typer.Option(help="GPU ids for the instances, e.g. 0,1 (default: every GPU).", rich_help_panel="Serving")] = None,
    max_batch: Annotated[int | None, typer.Option(help="max_batch_size below the model's batch range maximum.", rich_help_panel="Serving")] = None,
    queue_delay: Annotated[int, typer.Option(help="Dynamic batcher's max queue delay in microseconds.", rich_help_panel="Serving")] = 100,
    ensemble: Annotated[bool, typer.Option("--ensemble", help="Add NAME_pre / NAME_post Python models (edgecv's pre/postprocessing) and NAME_ensemble: encoded image in, boxes out.", rich_help_panel="Ensemble")] = False,
    conf: Annotated[float, typer.Option(help="Ensemble postprocessing score threshold.", rich_help_panel="Ensemble")] = 0.25,
    iou: Annotated[float, typer.Option(help="Ensemble postprocessing NMS IoU threshold.", rich_help_panel="Ensemble")] = 0.45,
    max_det: Annotated[int, typer.Option(help="Ensemble postprocessing: at most this many detections per image.", rich_help_panel="Ensemble")] = 300,
    backend: Annotated[str, typer.Option(help="auto (onnxruntime_onnx / tensorrt_plan by file type) or python (the ONNX on edgecv's ONNX Runtime engine in a Python-backend model, for servers without the ONNX Runtime backend).")] = "auto",
    name: Annotated[str | None, typer.Option(help="The model's name in the repository (one model; default: the file's stem).")] = None,
    onnx: Annotated[Path | None, typer.Option(help="For one engine: the ONNX it was built from, when it is not next to it (its tensor names and types).")] = None,
) -> None:
    """Write a Triton model repository: config.pbtxt, labels and the model file for each model.

    Example: edgecv deploy triton models/shapes-det.onnx model.engine -o repo --ensemble
    """
    from edgecv.deploy.triton import TritonConfig, write_repository

    gpu_ids = int_list(gpus, "--gpus")
    cfg = TritonConfig(
        version=version, instances=instances, device=device, gpus=tuple(gpu_ids) if gpu_ids else None, max_batch=max_batch,
        queue_delay_us=queue_delay, ensemble=ensemble, backend=backend, conf=conf, iou=iou, max_det=max_det, name=name,
    )  # fmt: skip
    deployed = write_repository(models, output, cfg, onnx=onnx)
    for model in deployed:
        extra = f" + {model.ensemble} (with {model.name}_pre, {model.name}_post)" if model.ensemble else ""
        out.print(f"{model.spec.path} -> {output / model.name}{extra}", highlight=False)
    out.print(f"serve: tritonserver --model-repository {output}", highlight=False)


@deploy_app.command("deepstream")
@handle_errors
def deepstream_cmd(
    model: Annotated[Path, typer.Argument(help="edgecv ONNX file or TensorRT engine (with its .json manifest).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="The nvinfer config file (default MODEL_nvinfer.txt; labels go to NAME_labels.txt beside it).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="nvinfer batch-size, normally the number of streams (default: the model's OPT batch).")] = None,
    gpu_id: Annotated[int, typer.Option(help="GPU nvinfer runs on.")] = 0,
    conf: Annotated[float, typer.Option(help="pre-cluster-threshold.")] = 0.25,
    iou: Annotated[float, typer.Option(help="nms-iou-threshold (when NMS is not in the graph).")] = 0.45,
    max_det: Annotated[int, typer.Option(help="topk.")] = 300,
    int8: Annotated[bool, typer.Option("--int8", help="Build an FP32 ONNX as implicit INT8 from MODEL.calib next to it (TensorRT 10).")] = False,
    custom_lib: Annotated[str | None, typer.Option(help="Bounding-box parser library for raw YOLO layouts (custom-lib-path).")] = None,
    parse_func: Annotated[str | None, typer.Option(help="Its parse function (parse-bbox-func-name).")] = None,
    interval: Annotated[int, typer.Option(help="Frames skipped between inferences.")] = 0,
    onnx: Annotated[Path | None, typer.Option(help="For an engine: the ONNX it was built from, when it is not next to it.")] = None,
) -> None:
    """Write a DeepStream nvinfer config (and labels file) for a model.

    Example: edgecv deploy deepstream model.engine -o config_infer_primary.txt --batch-size 4
    """
    from edgecv.deploy.deepstream import DeepStreamConfig, write_deepstream

    cfg = DeepStreamConfig(
        batch_size=batch_size, gpu_id=gpu_id, conf=conf, iou=iou, max_det=max_det, custom_lib=custom_lib, parse_func=parse_func,
        interval=interval, int8=int8,
    )  # fmt: skip
    result = write_deepstream(model, output, cfg, onnx=onnx)
    out.print(f"wrote {result.config} and {result.labels}", highlight=False)
    for note in result.notes:
        out.print(f"  note: {note}", highlight=False)
