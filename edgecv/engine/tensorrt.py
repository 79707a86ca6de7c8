"""The TensorRT backend: a plan + its manifest, run with name-based I/O on one CUDA stream per thread.

- The manifest is read and checked against this machine *before* the plan is
  deserialized (:func:`edgecv.engine.manifest.check_compatible`).
- I/O by tensor name (``set_tensor_address`` / ``execute_async_v3``), dynamic shapes via
  ``set_input_shape``.
- Buffers: device memory and pinned host memory from cuda-python, grown on demand
  (a larger batch or letterbox reallocates once, then is reused).
- Threads: each thread gets its own execution context, stream and buffers, created on
  first use (TensorRT contexts are not thread-safe; the engine is) and kept until
  ``close()``: call a model from a fixed set of threads (a pool), not a new thread per
  frame. No CUDA context push/pop is needed: cuda-python's runtime API uses the primary context.
- Inputs already on the GPU (``infer_on_device``) are ordered after the stream that made
  them (``__cuda_array_interface__["stream"]``) with an event, without a host sync.
- In-graph NMS (``num_dets``, ``boxes``, ``scores``, ``classes`` [, ``mask_coefs``]): the count
  comes back first, then only the first ``num_dets`` rows of each per-detection output.
- ``cuda_graph=True``: static shapes are captured once into a CUDA graph and replayed (one
  launch instead of one per layer); a new shape or input address recaptures, and an engine
  TensorRT cannot capture (data-dependent shapes) falls back to plain enqueues.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.engine.base import BaseEngine, TensorSpec, override_meta
from edgecv.errors import EngineError

log = logging.getLogger(__name__)

# in-graph NMS outputs (ours and TensorRT's EfficientNMS names): the count, and the outputs with one row per detection
COUNT_OUTPUTS = ("num_dets", "num_detections")
ROW_OUTPUTS = ("boxes", "scores", "classes", "mask_coefs", "detection_boxes", "detection_scores", "detection_classes")


@dataclass
class _Buffer:
    """A device allocation and a pinned host mirror of the same capacity."""

    device: int = 0
    host: int = 0
    capacity: int = 0

    def ensure(self, cudart: Any, nbytes: int) -> bool:
        """Grow to at least ``nbytes`` (by 1.5x steps, so a slowly growing shape reallocates rarely). True when reallocated."""
        from edgecv.engine.trt_compat import check_cuda

        if nbytes <= self.capacity:
            return False
        self.free(cudart)
        capacity = max(nbytes, int(self.capacity * 1.5), 256)
        self.device = int(check_cuda(cudart, cudart.cudaMalloc(capacity), "cudaMalloc"))
        self.host = int(check_cuda(cudart, cudart.cudaMallocHost(capacity), "cudaMallocHost"))
        self.capacity = capacity
        return True

    def host_array(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        count = int(np.prod(shape)) if shape else 1
        raw = (ctypes.c_byte * (count * np.dtype(dtype).itemsize)).from_address(self.host)
        return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)

    def free(self, cudart: Any) -> None:
        if self.device:
            cudart.cudaFree(self.device)
        if self.host:
            cudart.cudaFreeHost(self.host)
        self.device = self.host = self.capacity = 0


class _ThreadState:
    def __init__(self, engine: Any, cudart: Any, device: int) -> None:
        from edgecv.engine.trt_compat import check_cuda

        # the runtime API's current device is per thread: this thread's stream and buffers go on the engine's GPU
        check_cuda(cudart, cudart.cudaSetDevice(device), f"cudaSetDevice({device})")
        self.context = engine.create_execution_context()
        if self.context is None:
            raise EngineError("TensorRT could not create an execution context (out of GPU memory?)")
        self.stream = check_cuda(cudart, cudart.cudaStreamCreate(), "cudaStreamCreate")
        # CUDA events around the enqueue: the GPU's own time for the network, apart from copies and host work
        self.events = (check_cuda(cudart, cudart.cudaEventCreate(), "cudaEventCreate"), check_cuda(cudart, cudart.cudaEventCreate(), "cudaEventCreate"))
        self.handoff = check_cuda(cudart, cudart.cudaEventCreate(), "cudaEventCreate")  # orders device inputs from another stream
        self.buffers: dict[str, _Buffer] = {}
        self.inputs: dict[str, tuple[tuple[int, ...], int]] = {}  # name -> (shape, device address) of the last call
        self.graph: Any = None  # instantiated CUDA graph (cudaGraphExec_t) of one enqueue
        self.graph_key: tuple | None = None  # the input shapes and tensor addresses it was captured with
        self.graph_ok = True  # False once capture failed: this engine is run with plain enqueues
        self.warm_key: tuple | None = None  # TensorRT needs one plain enqueue with a shape before capturing it

    def drop_graph(self, cudart: Any) -> None:
        if self.graph is not None:
            cudart.cudaGraphExecDestroy(self.graph)
        self.graph = self.graph_key = None


class TensorRTEngine(BaseEngine):
    """A ``.engine``/``.plan`` file with its ``.engine.json`` manifest.

    Args:
        path: the plan.
        device: CUDA device index.
        task, names: override the manifest's task / class names.
        cuda_graph: capture the enqueue into a CUDA graph and replay it while shapes and
            input addresses stay the same (static-shape engines fed from reused buffers,
            as ``edgecv run`` does); saves the per-layer launch cost on small models.
        threads, providers, stop_spinning, spinning: ONNX Runtime options; accepted so that callers can pass
            the same options to any model file, and ignored.
    """

    backend = "tensorrt"

    def __init__(
        self,
        path: Path,
        *,
        device: int = 0,
        task: str | None = None,
        names: list[str] | None = None,
        cuda_graph: bool = False,
        threads: int | None = None,
        providers: Any = None,
        stop_spinning: bool = False,
        spinning: bool = False,
        _trt: Any = None,
        _cudart: Any = None,
    ) -> None:
        from edgecv.artifact import read_sidecar
        from edgecv.engine import trt_compat
        from edgecv.engine.manifest import check_compatible, current_environment

        path = Path(path)
        trt = _trt or trt_compat.import_tensorrt()
        cudart = _cudart or trt_compat.import_cudart()
        meta, info = read_sidecar(path)
        trt_compat.check_cuda(cudart, cudart.cudaSetDevice(device), f"cudaSetDevice({device})")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        env = current_environment(trt, cudart, device) | {"dla_cores": int(getattr(self._runtime, "num_DLA_cores", 0))}
        check_compatible(info, env, path)  # before deserializing
        meta = override_meta(meta, task, names, "the engine manifest")
        self._trt, self._cudart = trt, cudart
        if info.get("version_compatible"):
            # a version-compatible plan carries its own lean runtime (host code): allowed for plans
            # edgecv built, as their manifest says (TensorRT refuses them otherwise)
            self._runtime.engine_host_code_allowed = True
        if info.get("dla_core") is not None:
            self._runtime.DLA_core = int(info["dla_core"])  # the core it was built for
        self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise EngineError(
                f"TensorRT could not deserialize {path.name} (truncated or corrupt file?)",
                hint=f"rebuild it: {info.get('build_command') or 'edgecv build-engine MODEL.onnx -o ' + str(path)}",
            )
        inputs, outputs = [], []
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            spec = TensorSpec(name, tuple(int(d) for d in self._engine.get_tensor_shape(name)), np.dtype(trt.nptype(self._engine.get_tensor_dtype(name))))
            (inputs if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs).append(spec)
        super().__init__(path, meta, inputs, outputs)
        self.manifest = info
        self.device = device
        self.cuda_graph = cuda_graph
        self._local = threading.local()
        self._states: list[_ThreadState] = []
        self._lock = threading.Lock()

    def input_hw_range(self) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """The image input's height/width range: its fixed size, or optimization profile 0's min and max."""
        spec = self.inputs[0]
        if len(spec.shape) != 4:
            return None
        nhwc = self.meta.layout == "NHWC" or self.meta.preprocess_in_graph
        axes = (1, 2) if nhwc else (2, 3)
        fixed = tuple(spec.shape[a] for a in axes)
        if all(d > 0 for d in fixed):
            return (fixed[0], fixed[1]), (fixed[0], fixed[1])
        profile = self._engine.get_tensor_profile_shape(spec.name, 0)
        if len(profile) != 3:
            return None
        lo, hi = profile[0], profile[2]
        return (int(lo[axes[0]]), int(lo[axes[1]])), (int(hi[axes[0]]), int(hi[axes[1]]))

    def _state(self) -> _ThreadState:
        state = getattr(self._local, "state", None)
        if state is None:
            state = _ThreadState(self._engine, self._cudart, self.device)
            self._local.state = state
            with self._lock:
                self._states.append(state)
        return state

    @property
    def stream(self) -> int:
        """The calling thread's CUDA stream handle (GPU preprocessing launches on it)."""
        return int(self._state().stream)

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from edgecv.engine.trt_compat import check_cuda

        cudart, st = self._cudart, self._state()
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        for spec in self.inputs:
            array = np.ascontiguousarray(feeds[spec.name])
            self._set_shape(st, spec.name, tuple(array.shape))
            buf = st.buffers.setdefault(spec.name, _Buffer())
            buf.ensure(cudart, array.nbytes)
            buf.host_array(array.shape, array.dtype)[...] = array
            check_cuda(cudart, cudart.cudaMemcpyAsync(buf.device, buf.host, array.nbytes, h2d, st.stream), "cudaMemcpyAsync")
            self._set_address(st, spec.name, tuple(array.shape), buf.device)
        return self._execute(st)

    def infer_on_device(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        """Like :meth:`infer`, with inputs already on the GPU (objects with ``__cuda_array_interface__``,
        e.g. the output of :class:`edgecv.cuda.preprocess.GpuPreprocessor`): no upload, no host copy."""
        from edgecv.engine.trt_compat import check_cuda

        if self._closed:
            raise EngineError(f"{self.path.name}: engine is closed", hint="load the model again")
        st = self._state()
        for spec in self.inputs:
            interface = feeds[spec.name].__cuda_array_interface__
            shape, typestr = tuple(interface["shape"]), interface["typestr"]
            fits = len(shape) == len(spec.shape) and all(want in (-1, got) for want, got in zip(spec.shape, shape))
            if np.dtype(typestr) != spec.dtype or not fits:
                raise EngineError(f"{self.path.name}: input {spec.describe()} got {shape} {np.dtype(typestr).name} on the GPU")
            contiguous = tuple(int(np.prod(shape[i + 1 :])) * spec.dtype.itemsize for i in range(len(shape)))
            if interface.get("strides") not in (None, contiguous):
                raise EngineError(f"{self.path.name}: input {spec.name} on the GPU must be C-contiguous")
            self._set_shape(st, spec.name, shape)
            self._set_address(st, spec.name, shape, int(interface["data"][0]))
            producer = interface.get("stream")  # CUDA array interface v3: the stream the data was written on
            if producer is not None and int(producer) != int(st.stream):
                check_cuda(self._cudart, self._cudart.cudaEventRecord(st.handoff, int(producer)), "cudaEventRecord")
                check_cuda(self._cudart, self._cudart.cudaStreamWaitEvent(st.stream, st.handoff, 0), "cudaStreamWaitEvent")
        return self._execute(st)

    def _set_shape(self, st: _ThreadState, name: str, shape: tuple[int, ...]) -> None:
        if not st.context.set_input_shape(name, shape):
            raise EngineError(
                f"{self.path.name}: input shape {shape} is outside the engine's optimization profile",
                hint="rebuild with a profile that covers it (build-engine --batch MIN:OPT:MAX), or feed the built size",
            )

    def _set_address(self, st: _ThreadState, name: str, shape: tuple[int, ...], ptr: int) -> None:
        self._bind(st, name, ptr)
        st.inputs[name] = (shape, ptr)

    def _bind(self, st: _ThreadState, name: str, ptr: int) -> None:
        if st.context.set_tensor_address(name, ptr) is False:
            raise EngineError(f"{self.path.name}: TensorRT refused the address of tensor {name!r} (misaligned device memory?)")

    def _execute(self, st: _ThreadState) -> dict[str, np.ndarray]:
        from edgecv.engine.trt_compat import check_cuda

        cudart = self._cudart
        shapes = {}
        for spec in self.outputs:
            shape = tuple(int(d) for d in st.context.get_tensor_shape(spec.name))
            if any(d < 0 for d in shape):
                raise EngineError(f"{self.path.name}: output {spec.name} has a data-dependent shape {shape}", hint="export with fixed-size outputs (--nms gives num_dets/boxes/...)")
            buf = st.buffers.setdefault(spec.name, _Buffer())
            buf.ensure(cudart, int(np.prod(shape)) * spec.dtype.itemsize)
            self._bind(st, spec.name, buf.device)
            shapes[spec.name] = shape
        check_cuda(cudart, cudart.cudaEventRecord(st.events[0], st.stream), "cudaEventRecord")
        self._enqueue(st, shapes)
        check_cuda(cudart, cudart.cudaEventRecord(st.events[1], st.stream), "cudaEventRecord")
        results = self._download(st, shapes)
        self._local.gpu_ms = float(check_cuda(cudart, cudart.cudaEventElapsedTime(*st.events), "cudaEventElapsedTime"))
        return results

    def _enqueue(self, st: _ThreadState, shapes: dict[str, tuple[int, ...]]) -> None:
        """Run the network on the thread's stream: a plain enqueue, or the CUDA graph of one."""
        from edgecv.engine.trt_compat import check_cuda

        cudart = self._cudart
        if self.cuda_graph and st.graph_ok:
            key = tuple(sorted(st.inputs.items())) + tuple((name, st.buffers[name].device) for name in shapes)
            if st.graph is not None and key == st.graph_key:
                check_cuda(cudart, cudart.cudaGraphLaunch(st.graph, st.stream), "cudaGraphLaunch")
                return
            st.drop_graph(cudart)
            if st.warm_key == key and self._capture(st):
                st.graph_key = key
                check_cuda(cudart, cudart.cudaGraphLaunch(st.graph, st.stream), "cudaGraphLaunch")
                return
            st.warm_key = key
        if not st.context.execute_async_v3(st.stream):
            raise EngineError(f"{self.path.name}: TensorRT failed to enqueue the inference")

    def _capture(self, st: _ThreadState) -> bool:
        """Capture one enqueue into ``st.graph``; False (and plain enqueues from now on) when TensorRT cannot be captured."""
        cudart = self._cudart
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        err, *_ = cudart.cudaStreamBeginCapture(st.stream, mode)
        graph = None
        if int(err) == 0:
            enqueued = st.context.execute_async_v3(st.stream)
            err, graph = cudart.cudaStreamEndCapture(st.stream)  # always ends the capture, also after a failed enqueue
            if int(err) == 0 and not enqueued:
                err = "the enqueue failed while capturing"
            elif int(err) == 0:
                err, st.graph = cudart.cudaGraphInstantiate(graph, 0)
        if graph is not None:
            cudart.cudaGraphDestroy(graph)  # the instantiated graph does not need its template
        if not isinstance(err, str) and int(err) == 0:
            return True
        cudart.cudaGetLastError()  # clear the capture's error, so the next plain enqueue does not see it (as trtexec does)
        st.graph, st.graph_ok = None, False
        log.warning(
            "%s: TensorRT could not be captured into a CUDA graph (%s); running it with plain enqueues",
            self.path.name, err if isinstance(err, str) else getattr(err, "name", err),
        )  # fmt: skip
        return False

    def _download(self, st: _ThreadState, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
        """Copy the outputs to pinned host memory and wait for the stream.

        With in-graph NMS the count is read first and only its rows of the per-detection
        outputs are copied (one strided copy per output for the whole batch).
        """
        from edgecv.engine.trt_compat import check_cuda

        cudart = self._cudart
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        count = next((name for name in COUNT_OUTPUTS if name in shapes), None)
        rows = [s.name for s in self.outputs if count and s.name in ROW_OUTPUTS and len(shapes[s.name]) >= 2]
        results = {}
        for spec in self.outputs:
            if spec.name in rows:
                continue
            buf, shape = st.buffers[spec.name], shapes[spec.name]
            nbytes = int(np.prod(shape)) * spec.dtype.itemsize
            check_cuda(cudart, cudart.cudaMemcpyAsync(buf.host, buf.device, nbytes, d2h, st.stream), "cudaMemcpyAsync")
            results[spec.name] = buf.host_array(shape, spec.dtype)
        check_cuda(cudart, cudart.cudaStreamSynchronize(st.stream), "cudaStreamSynchronize")
        if not rows:
            return results
        for spec in self.outputs:
            if spec.name not in rows:
                continue
            buf, (batch, max_rows, *rest) = st.buffers[spec.name], shapes[spec.name]
            n, width, pitch = detection_copy(results[count], max_rows, int(np.prod(rest)) * spec.dtype.itemsize)
            if n:
                check_cuda(cudart, cudart.cudaMemcpy2DAsync(buf.host, width, buf.device, pitch, width, batch, d2h, st.stream), "cudaMemcpy2DAsync")
            results[spec.name] = buf.host_array((batch, n, *rest), spec.dtype)
        check_cuda(cudart, cudart.cudaStreamSynchronize(st.stream), "cudaStreamSynchronize")
        return results

    @property
    def last_gpu_ms(self) -> float | None:
        """GPU time of the calling thread's last inference (CUDA events around the enqueue), in ms."""
        return getattr(self._local, "gpu_ms", None)

    def _close(self) -> None:
        with self._lock:
            for state in self._states:
                for buf in state.buffers.values():
                    buf.free(self._cudart)
                state.drop_graph(self._cudart)
                self._cudart.cudaStreamDestroy(state.stream)
                for event in (*state.events, state.handoff):
                    self._cudart.cudaEventDestroy(event)
                state.context = None
            self._states.clear()
        self._engine = None


def detection_copy(num_dets: np.ndarray, max_rows: int, row_bytes: int) -> tuple[int, int, int]:
    """``(rows, width, pitch)`` of the strided copy that brings back the detections of every image.

    ``rows`` is the largest count in the batch (clamped to the output's ``max_rows``);
    each image's block of ``max_rows`` rows is ``pitch`` bytes apart on the device and
    its first ``rows`` rows (``width`` bytes) land back to back on the host.
    """
    n = int(np.clip(np.max(num_dets), 0, max_rows)) if np.size(num_dets) else 0
    return n, n * row_bytes, max_rows * row_bytes
