"""The Python-backend models `edgecv deploy triton` writes: edgecv's own pre/postprocessing on the server.

Triton's Python backend imports ``model.py`` and instantiates ``TritonPythonModel``; the generated
``model.py`` re-exports the class below, which reads what to do from its config's parameters:

    edgecv.step = preprocess    IMAGE (encoded bytes, uint8) -> the network input + TRANSFORM (letterbox)
    edgecv.step = onnxruntime   the network itself, on edgecv's ONNX Runtime engine (model.onnx beside model.py)
    edgecv.step = postprocess   the network outputs + TRANSFORM -> BOXES, SCORES, CLASSES (+ MASKS) or CLASS_MAP

``triton_python_backend_utils`` exists only inside the server; it is imported in ``initialize``.
Each request carries one image (the ensemble's ``max_batch_size`` is 1); the network's dynamic
batcher merges concurrent requests. A request that fails gets an error response, never a crash.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.artifact import ModelMeta
from edgecv.engine.base import BaseEngine, TensorSpec
from edgecv.vision.letterbox import LetterboxTransform

log = logging.getLogger(__name__)

IMAGE, TRANSFORM = "IMAGE", "TRANSFORM"


def transform_to_array(t: LetterboxTransform) -> np.ndarray:
    """(7,) float32: src h, src w, dst h, dst w, scale, pad x, pad y."""
    return np.array([*t.src_size, *t.dst_size, t.scale, t.pad_x, t.pad_y], np.float32)


def transform_from_array(a: np.ndarray) -> LetterboxTransform:
    v = np.asarray(a, np.float64).reshape(-1)
    return LetterboxTransform((int(v[0]), int(v[1])), (int(v[2]), int(v[3])), float(v[4]), float(v[5]), float(v[6]))


def decode_image(data: np.ndarray) -> np.ndarray:
    """Encoded image bytes (JPEG, PNG, ...) as uint8 -> BGR uint8 (H, W, 3)."""
    import cv2

    frame = cv2.imdecode(np.ascontiguousarray(np.asarray(data, np.uint8).reshape(-1)), cv2.IMREAD_COLOR)
    if frame is None:
        raise ValueError(f"IMAGE is not a decodable image ({np.size(data)} bytes)")
    return frame


class _OutputsOnly(BaseEngine):
    """An engine that is never run: lets edgecv's Detector/Segmenter postprocess outputs computed elsewhere."""

    backend = "remote"

    def __init__(self, meta: ModelMeta, outputs: list[TensorSpec]) -> None:
        inputs = [TensorSpec("images", (-1, 3, -1, -1), np.dtype(np.float32))]
        super().__init__(Path(meta.arch or "model"), meta, inputs, outputs)


def postprocessor(meta: ModelMeta, output_names: list[str], *, conf: float, iou: float, max_det: int) -> Any:
    """edgecv's Detector or Segmenter for ``meta``, used only for its ``postprocess``."""
    from edgecv.api import Detector, Segmenter

    outputs = [TensorSpec(n, (-1,), np.dtype(np.float32)) for n in output_names]
    engine = _OutputsOnly(meta, outputs)
    if meta.task == "detect":
        return Detector(engine, conf=conf, iou=iou, max_det=max_det)
    return Segmenter(engine)


def result_tensors(result: Any, batched: bool) -> dict[str, np.ndarray]:
    """A Detections or Segmentation as the ensemble's output arrays."""
    lead = (lambda a: a[None]) if batched else (lambda a: a)
    if hasattr(result, "class_map"):
        return {"CLASS_MAP": lead(np.asarray(result.class_map, np.int32))}
    out = {
        "BOXES": lead(np.asarray(result.xyxy, np.float32).reshape(-1, 4)),
        "SCORES": lead(np.asarray(result.scores, np.float32)),
        "CLASSES": lead(np.asarray(result.class_ids, np.int32)),
    }
    if getattr(result, "masks", None) is not None:
        out["MASKS"] = lead(np.asarray(result.masks, bool))
    return out


class TritonPythonModel:
    """One class for the three steps (Triton's Python backend calls initialize / execute / finalize)."""

    def initialize(self, args: dict[str, Any]) -> None:
        import triton_python_backend_utils as pb_utils

        self.pb = pb_utils
        self.config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in (self.config.get("parameters") or {}).items()}
        self.meta = ModelMeta.from_dict(json.loads(params["edgecv.meta"]))
        self.step = params.get("edgecv.step", "")
        self.batched = int(self.config.get("max_batch_size", 0)) > 0
        self.output_names = [o["name"] for o in self.config.get("output", [])]
        self.input_names = [i["name"] for i in self.config.get("input", [])]
        if self.step == "preprocess":
            from edgecv.vision.letterbox import preprocess

            self._preprocess = preprocess
        elif self.step == "onnxruntime":
            from edgecv.engine.onnxruntime import OnnxRuntimeEngine

            folder = Path(args["model_repository"]) / str(args["model_version"])
            self.engine = OnnxRuntimeEngine(folder / "model.onnx", providers="cpu")
        elif self.step == "postprocess":
            names = [n for n in self.input_names if n != TRANSFORM]
            self.post = postprocessor(
                self.meta, names, conf=float(params.get("conf", 0.25)), iou=float(params.get("iou", 0.45)), max_det=int(params.get("max_det", 300))
            )
        else:
            raise ValueError(f"unknown edgecv.step {self.step!r} in {self.config.get('name')}")

    def execute(self, requests: list[Any]) -> list[Any]:
        if self.step == "onnxruntime":
            return self._infer_merged(requests) if self.batched and len(requests) > 1 else [self._guard(self._infer, r) for r in requests]
        if self.step == "preprocess":
            return [self._guard(self._pre, r) for r in requests]
        return [self._guard(self._post, r) for r in requests]

    def _guard(self, fn: Any, request: Any) -> Any:
        try:
            tensors = fn(request)
            return self.pb.InferenceResponse(output_tensors=[self.pb.Tensor(k, np.ascontiguousarray(v)) for k, v in tensors.items()])
        except Exception as exc:  # the request fails, the server keeps serving
            log.warning("%s: %s", self.config.get("name"), exc)
            return self.pb.InferenceResponse(output_tensors=[], error=self.pb.TritonError(f"{type(exc).__name__}: {exc}"))

    def _input(self, request: Any, name: str) -> np.ndarray:
        tensor = self.pb.get_input_tensor_by_name(request, name)
        if tensor is None:
            raise ValueError(f"missing input {name}")
        return tensor.as_numpy()

    def _pre(self, request: Any) -> dict[str, np.ndarray]:
        data = self._input(request, IMAGE)
        if self.batched and data.shape[0] != 1:
            raise ValueError(f"send one image per request (got a batch of {data.shape[0]})")
        tensor, transform = self._preprocess(decode_image(data), self.meta)
        # (1, C, H, W) and (1, 7): the batch of one, or the leading 1 of an unbatched config's dims
        return {self.output_names[0]: tensor, TRANSFORM: transform_to_array(transform)[None]}

    def _infer(self, request: Any) -> dict[str, np.ndarray]:
        feeds = {spec.name: self._input(request, spec.name) for spec in self.engine.inputs}
        return {k: np.asarray(v) for k, v in self.engine.infer(feeds).items()}

    def _infer_merged(self, requests: list[Any]) -> list[Any]:
        """What the dynamic batcher is for: requests of the same shape go through the network as one batch.

        Requests are grouped by their inputs' shapes (batch dim aside), each group is concatenated,
        run once and split back; a group that fails is retried request by request, so one bad
        request fails alone.
        """
        responses: list[Any] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        feeds: list[dict[str, np.ndarray] | None] = []
        for i, request in enumerate(requests):
            try:
                feed = {spec.name: self._input(request, spec.name) for spec in self.engine.inputs}
            except Exception:
                feeds.append(None)
                responses[i] = self._guard(self._infer, request)
                continue
            feeds.append(feed)
            key = tuple((k, v.dtype.str, v.shape[1:]) for k, v in sorted(feed.items()))
            groups.setdefault(key, []).append(i)
        for members in groups.values():
            try:
                merged = {k: np.concatenate([feeds[i][k] for i in members]) for k in feeds[members[0]]}  # type: ignore[index]
                out = self.engine.infer(merged)
                start = 0
                for i in members:
                    n = next(iter(feeds[i].values())).shape[0]  # type: ignore[union-attr]
                    tensors = {k: np.ascontiguousarray(v[start : start + n]) for k, v in out.items()}
                    responses[i] = self.pb.InferenceResponse(output_tensors=[self.pb.Tensor(k, v) for k, v in tensors.items()])
                    start += n
            except Exception:
                for i in members:
                    responses[i] = self._guard(self._infer, requests[i])
        return responses

    def _post(self, request: Any) -> dict[str, np.ndarray]:
        transform = transform_from_array(self._input(request, TRANSFORM))
        outputs = {n: self._input(request, n) for n in self.input_names if n != TRANSFORM}
        return result_tensors(self.post.postprocess(outputs, transform), self.batched)

    def finalize(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.close()
