"""TensorRT 10 implicit INT8: an ``IInt8EntropyCalibrator2`` fed by edgecv's calibration images.

For users on JetPack 6 who build with ``BuilderFlag.INT8`` and a calibrator instead of a
Q/DQ graph. It reads and writes the same text cache as ``edgecv calibrate``
(:mod:`edgecv.engine.trt_cache`), so a cache made on a PC with ``edgecv calibrate`` is
used on the Jetson without calibrating again. TensorRT 11 has no implicit calibration:
use ``MODEL.int8.onnx`` there.

:class:`CalibrationBatches` (host-side batching) and the cache I/O run anywhere; the
device copy needs a GPU and cuda-python.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.errors import ConfigError, DatasetError, EngineError

log = logging.getLogger(__name__)


class CalibrationBatches:
    """Groups (1, C, H, W) model inputs into contiguous float32 (B, C, H, W) batches.

    TensorRT calibrates at one input shape, so every input must have ``shape``: preprocess
    with the model's full letterbox (``meta.replace(dynamic=False)``). A last batch with
    fewer than ``batch_size`` images is dropped (TensorRT needs full batches), and said so.
    """

    def __init__(self, inputs: Iterable[np.ndarray], batch_size: int, shape: tuple[int, ...]) -> None:
        if batch_size < 1:
            raise ConfigError(f"calibration batch size must be >= 1, got {batch_size}")
        self.inputs = inputs
        self.batch_size = batch_size
        self.shape = tuple(shape)
        self.dropped = 0

    @property
    def nbytes(self) -> int:
        return int(np.prod((self.batch_size, *self.shape))) * 4

    def __iter__(self) -> Iterator[np.ndarray]:
        batch = np.empty((self.batch_size, *self.shape), np.float32)
        filled = 0
        for item in self.inputs:
            array = np.asarray(item)
            if array.shape != (1, *self.shape):
                raise DatasetError(
                    f"a calibration input has shape {array.shape}, expected {(1, *self.shape)}",
                    hint="TensorRT calibrates at one shape: preprocess with the full letterbox to the model's input size",
                )
            batch[filled] = array[0]
            filled += 1
            if filled == self.batch_size:
                yield batch
                batch = np.empty_like(batch)
                filled = 0
        self.dropped = filled
        if filled:
            log.info("dropped the last %d calibration images (not a full batch of %d)", filled, self.batch_size)


def make_entropy_calibrator(
    batches: CalibrationBatches,
    cache_path: Path,
    *,
    tensor_names: Iterable[str] | None = None,
    trt: Any = None,
    cudart: Any = None,
) -> Any:
    """An ``IInt8EntropyCalibrator2`` that copies ``batches`` to the GPU and uses ``cache_path``.

    An existing cache is handed to TensorRT as is (TensorRT then skips calibration),
    after checking, here and now, that it parses and, with ``tensor_names`` (the ONNX
    model's tensors), that it was made for this model; a new one is written atomically.
    ``trt``/``cudart`` default to the installed modules.

    TensorRT catches exceptions raised in a calibrator's callbacks, prints them and carries
    on as if there were no cache / no more data. So the callbacks keep the first exception
    in ``calibrator.error`` for the builder to raise when the build then fails.

    Raises:
        EngineError: this TensorRT has no implicit calibration (11+).
        ArtifactError: the existing cache is corrupt, or names tensors the model lacks.
    """
    from edgecv.artifact import atomic_write_bytes
    from edgecv.engine import trt_compat
    from edgecv.engine.trt_cache import check_names, parse_cache

    trt = trt or trt_compat.import_tensorrt()
    if not trt_compat.has_implicit_int8(trt):
        raise EngineError(
            f"TensorRT {trt.__version__} has no implicit INT8 calibration (removed in TensorRT 11)",
            hint="build from the Q/DQ graph instead: edgecv calibrate MODEL.onnx DATA, then build-engine MODEL.int8.onnx",
        )
    cache_path = Path(cache_path)
    known = set(tensor_names) if tensor_names is not None else None

    def read_checked() -> bytes | None:
        if not cache_path.is_file():
            return None
        data = cache_path.read_bytes()
        cache = parse_cache(data.decode("utf-8", "replace"), source=str(cache_path))  # corrupt: an error, not garbage for TensorRT
        if known is not None:
            check_names(cache, known, source=str(cache_path))
        return data

    read_checked()  # now, where an error reaches the user (see the docstring)

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._iter = iter(batches)
            self._cudart = cudart
            self._device: int | None = None  # allocated on the first batch: a build from a cache needs none
            self.batches_done = 0
            self.error: Exception | None = None

        def get_batch_size(self) -> int:
            return batches.batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            try:
                return self._next_batch()
            except Exception as exc:
                self.error = self.error or exc
                return None

        def _next_batch(self) -> list[int] | None:
            batch = next(self._iter, None)
            if batch is None:
                return None
            cuda = self._cudart = self._cudart or trt_compat.import_cudart()
            if self._device is None:
                self._device = trt_compat.check_cuda(cuda, cuda.cudaMalloc(batches.nbytes), "cudaMalloc")
            kind = cuda.cudaMemcpyKind.cudaMemcpyHostToDevice
            trt_compat.check_cuda(cuda, cuda.cudaMemcpy(self._device, batch.ctypes.data, batch.nbytes, kind), "cudaMemcpy")
            self.batches_done += 1
            return [int(self._device)]

        def read_calibration_cache(self) -> bytes | None:
            try:
                data = read_checked()
            except Exception as exc:
                self.error = self.error or exc
                return None
            if data is not None:
                log.info("using calibration cache %s", cache_path)
            return data

        def write_calibration_cache(self, cache: Any) -> None:
            try:
                atomic_write_bytes(cache_path, bytes(cache))
                log.info("wrote calibration cache %s", cache_path)
            except Exception as exc:  # e.g. a full disk: the engine is still built, the error is raised after
                self.error = self.error or exc

        def free(self) -> None:
            if self._device is not None:
                self._cudart.cudaFree(self._device)
                self._device = None

        def __del__(self) -> None:
            try:
                self.free()
            except Exception:  # interpreter shutdown: the CUDA context may be gone already
                pass

    return EntropyCalibrator()
