"""Every call into ONNX Runtime's quantization and FP16 internals (used by quant/ and graph/fp16), in a form that survives their signature changes.

edgecv drives ``QDQQuantizer`` (the engine behind ``quantize_static``) and
``transformers.float16`` directly. Their signatures move between releases, and Jetson
users run whatever ``onnxruntime-gpu`` their JetPack has, so nothing here is positional:

- ``QDQQuantizer.__init__``: 1.16/1.17 took ``(model, per_channel, reduce_range, mode,
  static, weight_qType, activation_qType, tensors_range, ...)``; 1.18 dropped ``mode`` and
  ``static``. :func:`qdq_quantizer` passes every argument by the name the installed
  version uses and fills ``mode``/``static`` where they exist.
- ``tensors_range``: a ``TensorsData`` of ``TensorData(lowest, highest)`` (1.16 and later).
- ``convert_float_to_float16``: keywords only, and only those the installed version has.

CI runs the quantization tests on the oldest supported version (:data:`OLDEST_TESTED`,
``.ci/run``), which is pyproject's floor.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from edgecv._optional import require
from edgecv.errors import MissingDependencyError

OLDEST_TESTED = "1.18.1"


def _version() -> str:
    return str(require("onnxruntime").__version__)


def tensors_data(ranges: Mapping[str, tuple[float, float]]) -> Any:
    """``{tensor: (low, high)}`` as the quantizer's ``TensorsData`` (MinMax method: the ranges are used as given)."""
    calibrate = require("onnxruntime.quantization.calibrate")
    data = {name: calibrate.TensorData(lowest=np.float32(low), highest=np.float32(high)) for name, (low, high) in ranges.items()}
    return calibrate.TensorsData(calibrate.CalibrationMethod.MinMax, data)


def qdq_quantizer(
    model: Any,
    *,
    per_channel: bool,
    reduce_range: bool,
    weight_type: Any,
    activation_type: Any,
    tensors_range: Any,
    nodes_to_quantize: Iterable[str],
    nodes_to_exclude: Iterable[str],
    op_types_to_quantize: Iterable[str],
    extra_options: Mapping[str, Any],
) -> Any:
    """A ``QDQQuantizer`` for static QDQ quantization, whatever the installed version's signature.

    Raises:
        MissingDependencyError: the installed version's constructor needs an argument this
            shim does not know (a version newer or older than those tested).
    """
    module = require("onnxruntime.quantization.qdq_quantizer")
    quant_utils = require("onnxruntime.quantization.quant_utils")
    values: dict[str, Any] = {
        "model": model,
        "per_channel": per_channel,
        "reduce_range": reduce_range,
        "mode": quant_utils.QuantizationMode.QLinearOps,  # <= 1.17 only
        "static": True,  # <= 1.17 only
        "weight_qType": weight_type,
        "activation_qType": activation_type,
        "tensors_range": tensors_range,
        "nodes_to_quantize": list(nodes_to_quantize),
        "nodes_to_exclude": list(nodes_to_exclude),
        "op_types_to_quantize": list(op_types_to_quantize),
        "extra_options": dict(extra_options),
    }
    parameters = list(inspect.signature(module.QDQQuantizer.__init__).parameters.values())[1:]  # self
    kwargs: dict[str, Any] = {}
    for p in parameters:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in values:
            kwargs[p.name] = values[p.name]
        elif p.default is p.empty:
            raise MissingDependencyError(
                f"onnxruntime {_version()}'s QDQQuantizer needs an argument edgecv does not know: {p.name!r}",
                hint=f"install an onnxruntime edgecv was tested with (>= {OLDEST_TESTED}, e.g. pip install 'onnxruntime==1.32.*'), or report this",
            )
    return module.QDQQuantizer(**kwargs)


def quantized_op_types() -> set[str]:
    """Operator types ONNX Runtime has quantized (QLinear or QDQ) handling for."""
    registry = require("onnxruntime.quantization.registry")
    return set(getattr(registry, "QLinearOpsRegistry", {})) | set(getattr(registry, "QDQRegistry", {}))


def float16_block_list() -> list[str]:
    float16 = require("onnxruntime.transformers.float16")
    return list(getattr(float16, "DEFAULT_OP_BLOCK_LIST", []))


def convert_float_to_float16(model: Any, **options: Any) -> Any:
    """``onnxruntime.transformers.float16.convert_float_to_float16`` with keywords only, those the installed version has.

    Raises:
        MissingDependencyError: an option edgecv relies on is missing in the installed version.
    """
    float16 = require("onnxruntime.transformers.float16")
    accepted = set(inspect.signature(float16.convert_float_to_float16).parameters)
    missing = sorted(set(options) - accepted)
    if missing:
        raise MissingDependencyError(
            f"onnxruntime {_version()}'s convert_float_to_float16 has no {', '.join(missing)}",
            hint=f"install onnxruntime >= {OLDEST_TESTED}",
        )
    return float16.convert_float_to_float16(model, **options)
