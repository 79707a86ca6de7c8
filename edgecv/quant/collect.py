"""One pass of ONNX Runtime over the calibration images, recording every float activation.

The model is copied with every float activation tensor added as a graph output; each
image's tensors update a :class:`~edgecv.quant.ranges.TensorStats`. All calibration
methods, both targets and every mixed-precision trial read these same statistics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any

import numpy as np

from edgecv._optional import require
from edgecv.errors import DatasetError, EngineError
from edgecv.quant.ranges import Scratch, TensorStats

log = logging.getLogger(__name__)


def float_activations(model: Any) -> list[str]:
    """Names of the float32 tensors nodes read or write (graph inputs included, initializers not), in graph order.

    ``model`` must have value infos (run ``onnx.shape_inference.infer_shapes`` first);
    tensors whose type is unknown are left out.
    """
    onnx = require("onnx")
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.value_info, *graph.output]}
    names: list[str] = []
    seen: set[str] = set()
    for node in graph.node:
        for name in [*node.input, *node.output]:
            if name and name not in seen and name not in initializers and types.get(name) == onnx.TensorProto.FLOAT:
                seen.add(name)
                names.append(name)
    return names


def collect_stats(
    model: Any,
    batches: Iterable[np.ndarray],
    *,
    total: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    threads: int | None = None,
    tensors: Collection[str] | None = None,
    histogram: Collection[str] | None = None,
) -> tuple[dict[str, TensorStats], int]:
    """Run ``model`` on each input and accumulate the statistics of its float activations.

    Args:
        model: ``onnx.ModelProto`` with value infos (not modified).
        batches: model inputs (one array each; the model's single input).
        total: the number of inputs, for ``progress``.
        progress: ``progress(done, total)`` after each input.
        threads: ONNX Runtime intra-op threads.
        tensors: the activations to record (None: every float activation). Each one is a
            graph output of the copy ONNX Runtime runs, so fewer tensors is a faster pass.
        histogram: the recorded tensors that also get a histogram of ``|x|`` (None: all);
            the others keep min/max only (``amax`` = ``max |x|`` for every method).

    Returns:
        ``{tensor name: TensorStats}`` and the number of inputs seen.

    Raises:
        DatasetError: ``batches`` was empty.
        EngineError: ONNX Runtime could not run the model.
    """
    onnx = require("onnx")
    ort = require("onnxruntime")
    names = float_activations(model)
    if tensors is not None:
        wanted = set(tensors)
        names = [name for name in names if name in wanted]
    with_hist = set(names) if histogram is None else set(histogram)
    augmented = onnx.ModelProto()
    augmented.CopyFrom(model)
    existing = {o.name for o in augmented.graph.output}
    input_names = {i.name for i in augmented.graph.input}
    for name in names:
        if name not in existing and name not in input_names:
            augmented.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(augmented.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise EngineError(f"ONNX Runtime cannot run the model to collect statistics: {str(exc).splitlines()[0]}") from exc
    graph_inputs = session.get_inputs()
    if len(graph_inputs) != 1:
        raise EngineError(f"calibration feeds one input; the model has {len(graph_inputs)}: {[i.name for i in graph_inputs]}")
    feed_name = graph_inputs[0].name
    outputs = [o.name for o in session.get_outputs() if o.name in set(names)]
    stats = {name: TensorStats() for name in names}
    seen = 0
    scratch = Scratch()
    start = time.perf_counter()
    for batch in batches:
        values = session.run(outputs, {feed_name: batch})
        if feed_name in stats:
            stats[feed_name].update(batch, histogram=feed_name in with_hist, scratch=scratch)
        for name, value in zip(outputs, values):
            stats[name].update(value, histogram=name in with_hist, scratch=scratch)
        seen += 1
        if progress:
            progress(seen, total or seen)
    if not seen:
        raise DatasetError("no calibration image could be read", hint="check the folder holds readable images (jpg, png, ...)")
    log.info("activation statistics of %d tensors over %d images in %.1f s", len(stats), seen, time.perf_counter() - start)
    return stats, seen
