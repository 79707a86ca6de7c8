"""A strict CUDA runtime simulator for the CPU tests of the GPU path (cuda-python's ``cudart`` and the part of ``numba.cuda`` edgecv uses).

It exists to make the usual GPU bugs fail a test on a machine without a GPU:

- **Work is deferred.** Copies, kernels, TensorRT enqueues and event records queued on a
  stream run only when something waits for them: ``cudaStreamSynchronize``,
  ``cudaEventSynchronize`` (up to that event), ``cudaDeviceSynchronize``, a synchronous
  ``cudaMemcpy``/``cudaFree`` (which synchronize the device, as CUDA's do), or a stream
  that waits on an event of another stream (``cudaStreamWaitEvent``) when it runs. Within a
  stream, work runs in queue order. A missing synchronization therefore reads stale data.
- **Device memory is not host memory.** Device allocations live in their own address range
  (one arena); the host bytes at those addresses are a decoy filled with ``0xFF`` (NaN as
  float32, -1 as int32), so a host read through a device pointer sees poison, and a host
  write into it is detected (:class:`SimError`) at the next synchronization. A device call
  given a host pointer where device memory belongs (or the reverse, or the wrong
  ``cudaMemcpyKind``) raises :class:`SimError` at once; a kernel or TensorRT reading host
  memory raises when it runs.
- **Freed memory is poisoned**: device and pinned allocations are filled with ``0xFF`` when
  freed and any later device use raises; freeing with the wrong function raises.
- **Host memory as on an integrated GPU (Jetson)**: ``cudaMallocHost`` memory is pinned and
  may be the host side of async copies, which read it *when they run* (so overwriting it
  before a sync corrupts the copy); pageable memory in an async copy is staged at the call
  (host -> device) or completes the stream first (device -> host), as CUDA does.
  ``cudaHostAlloc(..., cudaHostAllocMapped)`` memory is also device-accessible at the same
  address (unified addressing): kernels read it in place, at run time.
- **Events record simulated time**: every operation advances its stream's clock by a cost
  (copies by size, kernels and enqueues by a fixed time); ``cudaEventElapsedTime`` is the
  difference and fails with ``cudaErrorNotReady`` until both events have run.
- **Stream capture**: between ``cudaStreamBeginCapture`` and ``cudaStreamEndCapture`` work
  on the stream is recorded into a graph; ``cudaGraphLaunch`` queues it again (deferred,
  like any work). Synchronizing a capturing stream is an error, as in CUDA.

Stream handle 0 is the legacy default stream: work on it first runs everything queued on
the other streams and then runs at once (CUDA orders it after and before the blocking
streams' work; running it eagerly keeps that order).
"""

from __future__ import annotations

import ctypes
import itertools
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

POISON = 0xFF
ARENA_BYTES = 64 << 20
ALIGN = 256  # cudaMalloc's alignment (TensorRT wants 256-byte aligned tensors)


class SimError(AssertionError):
    """A GPU bug the simulator caught (a test failure, never a user-facing error)."""


cudaError_t = IntEnum(  # noqa: N816
    "cudaError_t",
    {"cudaSuccess": 0, "cudaErrorInvalidValue": 1, "cudaErrorMemoryAllocation": 2, "cudaErrorInvalidResourceHandle": 400,
     "cudaErrorNotReady": 600, "cudaErrorStreamCaptureUnsupported": 900, "cudaErrorStreamCaptureInvalidated": 901},
)  # fmt: skip
cudaMemcpyKind = IntEnum(  # noqa: N816
    "cudaMemcpyKind", ["cudaMemcpyHostToHost", "cudaMemcpyHostToDevice", "cudaMemcpyDeviceToHost", "cudaMemcpyDeviceToDevice", "cudaMemcpyDefault"], start=0
)
cudaStreamCaptureMode = IntEnum(  # noqa: N816
    "cudaStreamCaptureMode", ["cudaStreamCaptureModeGlobal", "cudaStreamCaptureModeThreadLocal", "cudaStreamCaptureModeRelaxed"], start=0
)
cudaHostAllocMapped = 2  # noqa: N816
OK = cudaError_t.cudaSuccess


@dataclass
class Block:
    """One allocation. ``kind``: device, pinned or mapped; ``freed`` once freed (kept, poisoned, to catch late use)."""

    kind: str
    addr: int
    size: int
    store: Any  # device: bytearray (the device's bytes); host kinds: the ctypes buffer at addr
    freed: bool = False


@dataclass
class Op:
    stream: int
    run: Callable[[], None]
    cost_ms: float
    what: str
    event: int | None = None  # an event record
    wait: tuple[int, int] | None = None  # (stream, event) this op waits for


@dataclass
class Stream:
    handle: int
    device: int
    queue: list[Op] = field(default_factory=list)
    clock: float = 0.0
    capturing: list[Op] | None = None


@dataclass
class Event:
    handle: int
    stream: int | None = None
    pending: bool = False  # recorded, not run yet
    time: float | None = None  # simulated ms when it ran


class CudaSim:
    """The simulated device and a ``cudart``-like API (methods named and returning as cuda-python's ``cudart``)."""

    cudaError_t = cudaError_t  # noqa: N815
    cudaMemcpyKind = cudaMemcpyKind  # noqa: N815
    cudaStreamCaptureMode = cudaStreamCaptureMode  # noqa: N815
    cudaHostAllocMapped = cudaHostAllocMapped  # noqa: N815

    def __init__(self, *, cc: tuple[int, int] = (8, 7), name: str = "Orin", integrated: bool = True, fail_capture: bool = False,
                 bandwidth_gb_s: float = 10.0, kernel_ms: float = 0.05) -> None:  # fmt: skip
        self.cc, self.name, self.integrated, self.fail_capture = cc, name, integrated, fail_capture
        self.bandwidth, self.kernel_ms = bandwidth_gb_s * 1e6, kernel_ms  # bytes per ms
        self.lock = threading.RLock()
        self._arena = (ctypes.c_ubyte * ARENA_BYTES)()
        ctypes.memset(self._arena, POISON, ARENA_BYTES)
        self.arena_base = ctypes.addressof(self._arena)
        self._next = self.arena_base
        self.blocks: dict[int, Block] = {}  # addr -> block, every allocation ever made
        self.streams: dict[int, Stream] = {0: Stream(0, 0)}
        self.events: dict[int, Event] = {}
        self.graphs: dict[int, list[Op]] = {}
        self.execs: dict[int, list[Op]] = {}
        self._ids = itertools.count(1)
        self.current_device: dict[int, int] = {}
        self.stream_devices: dict[int, int] = {}
        self.graph_launches = 0
        self.errors_cleared = 0
        self.copies_2d: list[tuple[int, int, int, int]] = []
        self.waits: list[tuple[int, int]] = []
        self.syncs = 0
        self.ran: list[str] = []  # what ran, in order (for tests of ordering)

    # ------------------------------------------------------------------ memory
    def live(self, kind: str | None = None) -> list[Block]:
        return [b for b in self.blocks.values() if not b.freed and (kind is None or b.kind == kind)]

    def find(self, ptr: int, nbytes: int = 1) -> Block | None:
        """The allocation (live or freed) holding ``[ptr, ptr + nbytes)``; None for memory the simulator did not allocate."""
        for b in self.blocks.values():
            if b.addr <= ptr < b.addr + b.size:
                if ptr + nbytes > b.addr + b.size:
                    raise SimError(f"{nbytes} bytes at {ptr:#x} run past the end of a {b.size}-byte {b.kind} allocation at {b.addr:#x}")
                return b
        if self.arena_base <= ptr < self.arena_base + ARENA_BYTES:
            raise SimError(f"{ptr:#x} is device address space that was never allocated")
        return None

    def _device_side(self, ptr: int, nbytes: int, what: str) -> Block:
        """The block a device-side access of ``[ptr, ptr + nbytes)`` touches: device memory, or mapped host memory."""
        b = self.find(ptr, nbytes)
        if b is None or b.kind == "pinned":
            kind = "pinned host memory (not mapped)" if b is not None else "host memory"
            raise SimError(f"{what}: device access to {kind} at {ptr:#x}; it needs a device pointer")
        if b.freed:
            raise SimError(f"{what}: device access to freed {b.kind} memory at {ptr:#x}")
        return b

    def _host_side(self, ptr: int, nbytes: int, what: str) -> Block | None:
        """The block of a host-side pointer: pinned/mapped, or None for pageable memory."""
        b = self.find(ptr, nbytes)
        if b is not None and b.kind == "device":
            raise SimError(f"{what}: {ptr:#x} is device memory where a host pointer belongs")
        if b is not None and b.freed:
            raise SimError(f"{what}: host buffer at {ptr:#x} was freed")
        return b

    def device_read(self, ptr: int, nbytes: int, what: str = "read") -> bytes:
        b = self._device_side(ptr, nbytes, what)
        if b.kind == "device":
            off = ptr - b.addr
            return bytes(b.store[off : off + nbytes])
        return ctypes.string_at(ptr, nbytes)

    def device_write(self, ptr: int, data: bytes, what: str = "write") -> None:
        b = self._device_side(ptr, len(data), what)
        if b.kind == "device":
            off = ptr - b.addr
            b.store[off : off + len(data)] = data
        else:
            ctypes.memmove(ptr, data, len(data))

    def peek(self, ptr: int, nbytes: int) -> bytes:
        """What device memory holds now, without synchronizing (a debugger's view, for tests)."""
        return self.device_read(ptr, nbytes, "peek")

    def _check_decoys(self) -> None:
        for b in self.live("device"):
            if ctypes.string_at(b.addr, b.size) != bytes([POISON]) * b.size:
                raise SimError(f"the host wrote into device memory at {b.addr:#x} (a device pointer used as a host pointer)")

    def _alloc_host(self, size: int, kind: str) -> int:
        buf = (ctypes.c_ubyte * max(size, 1))()
        ctypes.memset(buf, POISON, max(size, 1))  # fresh memory is garbage, not zeros
        addr = ctypes.addressof(buf)
        self.blocks[addr] = Block(kind, addr, size, buf)
        return addr

    def cudaMalloc(self, size: int) -> tuple[cudaError_t, int]:  # noqa: N802
        with self.lock:
            addr = -(-self._next // ALIGN) * ALIGN
            if addr + size > self.arena_base + ARENA_BYTES:
                return cudaError_t.cudaErrorMemoryAllocation, 0
            self._next = addr + max(size, 1)
            self.blocks[addr] = Block("device", addr, size, bytearray([POISON]) * size)
            return OK, addr

    def cudaMallocHost(self, size: int) -> tuple[cudaError_t, int]:  # noqa: N802
        with self.lock:
            return OK, self._alloc_host(size, "pinned")

    def cudaHostAlloc(self, size: int, flags: int) -> tuple[cudaError_t, int]:  # noqa: N802
        with self.lock:
            return OK, self._alloc_host(size, "mapped" if flags & cudaHostAllocMapped else "pinned")

    def cudaHostGetDevicePointer(self, ptr: int, flags: int) -> tuple[cudaError_t, int]:  # noqa: N802
        b = self.find(ptr)
        if b is None or b.kind != "mapped" or b.freed:
            return cudaError_t.cudaErrorInvalidValue, 0
        return OK, ptr  # unified addressing: the same address on both sides

    def _free(self, ptr: int, kinds: tuple[str, ...], fn: str) -> tuple[cudaError_t]:
        with self.lock:
            self._drain_all()  # cudaFree / cudaFreeHost synchronize the device
            b = self.blocks.get(ptr)
            if b is None:
                raise SimError(f"{fn}({ptr:#x}): not the start of an allocation")
            if b.freed:
                raise SimError(f"{fn}({ptr:#x}): freed twice")
            if b.kind not in kinds:
                raise SimError(f"{fn}({ptr:#x}) on {b.kind} memory (device memory: cudaFree; host memory: cudaFreeHost)")
            b.freed = True
            if b.kind == "device":
                b.store[:] = bytes([POISON]) * b.size
            else:
                ctypes.memset(b.addr, POISON, b.size)
            return (OK,)

    def cudaFree(self, ptr: int) -> tuple[cudaError_t]:  # noqa: N802
        return self._free(ptr, ("device",), "cudaFree")

    def cudaFreeHost(self, ptr: int) -> tuple[cudaError_t]:  # noqa: N802
        return self._free(ptr, ("pinned", "mapped"), "cudaFreeHost")

    # ------------------------------------------------------------------ streams and work
    def cudaStreamCreate(self) -> tuple[cudaError_t, int]:  # noqa: N802
        with self.lock:
            handle = next(self._ids)
            device = self.current_device.get(threading.get_ident(), 0)
            self.streams[handle] = Stream(handle, device)
            self.stream_devices[handle] = device
            return OK, handle

    def cudaStreamDestroy(self, stream: int) -> tuple[cudaError_t]:  # noqa: N802
        with self.lock:
            self._stream(stream)
            self._drain(stream)  # queued work still completes
            del self.streams[int(stream)]
            return (OK,)

    def _stream(self, stream: Any) -> Stream:
        s = self.streams.get(int(stream))
        if s is None:
            raise SimError(f"stream {stream} does not exist (destroyed, or never created)")
        return s

    def enqueue(self, stream: Any, run: Callable[[], None], *, cost_ms: float = 0.0, what: str = "work", **extra: Any) -> None:
        """Queue ``run`` on ``stream`` (recorded instead when the stream is capturing)."""
        with self.lock:
            s = self._stream(stream)
            op = Op(s.handle, run, cost_ms, what, **extra)
            if s.capturing is not None:
                s.capturing.append(op)
            elif s.handle == 0:
                self._drain_all()
                self._execute(op)
            else:
                s.queue.append(op)

    def _execute(self, op: Op) -> None:
        s = self.streams[op.stream]
        if op.wait is not None:
            other, event = op.wait
            self._drain(other, until_event=event)
            s.clock = max(s.clock, self.events[event].time or 0.0)
        op.run()
        s.clock += op.cost_ms
        if op.event is not None:
            e = self.events[op.event]
            e.pending, e.time = False, s.clock
        self.ran.append(op.what)

    def _drain(self, stream: int, until_event: int | None = None) -> None:
        s = self.streams.get(stream)
        if s is None:
            return
        while s.queue:
            op = s.queue.pop(0)
            self._execute(op)
            if until_event is not None and op.event == until_event:
                break
        self._check_decoys()

    def _drain_all(self) -> None:
        for handle in list(self.streams):
            self._drain(handle)

    def _not_capturing(self, stream: int, what: str) -> None:
        if self._stream(stream).capturing is not None:
            raise SimError(f"{what} on stream {stream} while it is being captured into a CUDA graph")

    def cudaStreamSynchronize(self, stream: Any) -> tuple[cudaError_t]:  # noqa: N802
        with self.lock:
            self._not_capturing(int(stream), "cudaStreamSynchronize")
            self.syncs += 1
            self._drain(int(stream)) if int(stream) else self._drain_all()
            return (OK,)

    def cudaDeviceSynchronize(self) -> tuple[cudaError_t]:  # noqa: N802
        with self.lock:
            self.syncs += 1
            self._drain_all()
            return (OK,)

    def _copy_cost(self, nbytes: int) -> float:
        return 0.005 + nbytes / self.bandwidth

    def cudaMemcpyAsync(self, dst: int, src: int, size: int, kind: int, stream: Any) -> tuple[cudaError_t]:  # noqa: N802
        return self._memcpy2d(dst, size, src, size, size, 1, kind, stream, "cudaMemcpyAsync")

    def cudaMemcpy2DAsync(self, dst: int, dpitch: int, src: int, spitch: int, width: int, height: int, kind: int, stream: Any) -> tuple[cudaError_t]:  # noqa: N802
        if width > dpitch or width > spitch:
            return (cudaError_t.cudaErrorInvalidValue,)
        self.copies_2d.append((dpitch, spitch, width, height))
        return self._memcpy2d(dst, dpitch, src, spitch, width, height, kind, stream, "cudaMemcpy2DAsync")

    def _memcpy2d(self, dst: int, dpitch: int, src: int, spitch: int, width: int, height: int, kind: int, stream: Any, fn: str) -> tuple[cudaError_t]:
        with self.lock:
            span_d, span_s = dpitch * (height - 1) + width, spitch * (height - 1) + width
            kind = cudaMemcpyKind(int(kind))
            src_dev = kind in (cudaMemcpyKind.cudaMemcpyDeviceToHost, cudaMemcpyKind.cudaMemcpyDeviceToDevice)
            dst_dev = kind in (cudaMemcpyKind.cudaMemcpyHostToDevice, cudaMemcpyKind.cudaMemcpyDeviceToDevice)
            if kind in (cudaMemcpyKind.cudaMemcpyHostToHost, cudaMemcpyKind.cudaMemcpyDefault):
                raise SimError(f"{fn}: {kind.name} is not used by edgecv; pass the direction")
            s_block = self._device_side(src, span_s, f"{fn} source") if src_dev else self._host_side(src, span_s, f"{fn} source")
            d_block = self._device_side(dst, span_d, f"{fn} destination") if dst_dev else self._host_side(dst, span_d, f"{fn} destination")
            rows = [(dst + r * dpitch, src + r * spitch) for r in range(height)]
            if not src_dev and s_block is None:  # pageable host source: CUDA stages it before returning
                staged = [ctypes.string_at(s, width) for _, s in rows]

                def run() -> None:
                    for (d, _), data in zip(rows, staged):
                        self.device_write(d, data, fn)
            else:

                def run() -> None:
                    for d, s in rows:
                        data = self.device_read(s, width, fn) if src_dev else ctypes.string_at(s, width)
                        if dst_dev:
                            self.device_write(d, data, fn)
                        else:
                            ctypes.memmove(d, data, width)

            self.enqueue(stream, run, cost_ms=self._copy_cost(width * height), what=f"{fn} {kind.name}")
            if not dst_dev and d_block is None:  # pageable host destination: the call returns when the copy is done
                self._not_capturing(int(stream), f"{fn} to pageable memory")
                self._drain(int(stream)) if int(stream) else None
            return (OK,)

    def cudaMemcpy(self, dst: int, src: int, size: int, kind: int) -> tuple[cudaError_t]:  # noqa: N802
        """Synchronous: the device is synchronized first, and the copy is done when it returns."""
        with self.lock:
            self._drain_all()
            err = self._memcpy2d(dst, size, src, size, size, 1, kind, 0, "cudaMemcpy")
            return err

    # ------------------------------------------------------------------ events
    def cudaEventCreate(self) -> tuple[cudaError_t, int]:  # noqa: N802
        with self.lock:
            handle = next(self._ids)
            self.events[handle] = Event(handle)
            return OK, handle

    def cudaEventDestroy(self, event: int) -> tuple[cudaError_t]:  # noqa: N802
        with self.lock:
            self._event(event)
            del self.events[int(event)]
            return (OK,)

    def _event(self, event: Any) -> Event:
        e = self.events.get(int(event))
        if e is None:
            raise SimError(f"event {event} does not exist")
        return e

    def cudaEventRecord(self, event: Any, stream: Any) -> tuple[cudaError_t]:  # noqa: N802
        with self.lock:
            e = self._event(event)
            e.stream, e.pending, e.time = int(stream), True, None
            self.enqueue(stream, lambda: None, what=f"record event {int(event)}", event=int(event))
            return (OK,)

    def cudaEventSynchronize(self, event: Any) -> tuple[cudaError_t]:  # noqa: N802
        with self.lock:
            e = self._event(event)
            self.syncs += 1
            if e.pending and e.stream is not None:
                self._drain(e.stream, until_event=e.handle)
            return (OK,)

    def cudaEventQuery(self, event: Any) -> tuple[cudaError_t]:  # noqa: N802
        e = self._event(event)
        return (cudaError_t.cudaErrorNotReady if e.pending else OK,)

    def cudaEventElapsedTime(self, start: Any, end: Any) -> tuple[cudaError_t, float]:  # noqa: N802
        with self.lock:
            a, b = self._event(start), self._event(end)
            if a.stream is None or b.stream is None:
                return cudaError_t.cudaErrorInvalidResourceHandle, 0.0  # never recorded
            if a.pending or b.pending:
                return cudaError_t.cudaErrorNotReady, 0.0
            return OK, float(b.time - a.time)  # type: ignore[operator]

    def cudaStreamWaitEvent(self, stream: Any, event: Any, flags: int) -> tuple[cudaError_t]:  # noqa: N802
        with self.lock:
            e = self._event(event)
            self.waits.append((int(stream), int(event)))
            if e.pending and e.stream is not None:
                self.enqueue(stream, lambda: None, what=f"wait event {int(event)}", wait=(e.stream, e.handle))
            return (OK,)

    # ------------------------------------------------------------------ graphs
    def cudaStreamBeginCapture(self, stream: Any, mode: int) -> tuple[cudaError_t]:  # noqa: N802
        with self.lock:
            cudaStreamCaptureMode(int(mode))
            s = self._stream(stream)
            if s.capturing is not None:
                return (cudaError_t.cudaErrorStreamCaptureInvalidated,)
            s.capturing = []
            return (OK,)

    def cudaStreamEndCapture(self, stream: Any) -> tuple[cudaError_t, int | None]:  # noqa: N802
        with self.lock:
            s = self._stream(stream)
            ops, s.capturing = s.capturing, None
            if ops is None:
                return cudaError_t.cudaErrorInvalidValue, None
            if self.fail_capture:
                return cudaError_t.cudaErrorStreamCaptureUnsupported, None
            handle = next(self._ids)
            self.graphs[handle] = ops
            return OK, handle

    def cudaGraphInstantiate(self, graph: int, flags: int) -> tuple[cudaError_t, int]:  # noqa: N802
        with self.lock:
            handle = next(self._ids)
            self.execs[handle] = list(self.graphs[graph])
            return OK, handle

    def cudaGraphDestroy(self, graph: int) -> tuple[cudaError_t]:  # noqa: N802
        with self.lock:
            del self.graphs[graph]
            return (OK,)

    def cudaGraphExecDestroy(self, graph_exec: int) -> tuple[cudaError_t]:  # noqa: N802
        with self.lock:
            del self.execs[graph_exec]
            return (OK,)

    def cudaGraphLaunch(self, graph_exec: int, stream: Any) -> tuple[cudaError_t]:  # noqa: N802
        with self.lock:
            for op in self.execs[graph_exec]:
                extra = {"event": op.event, "wait": op.wait}
                self.enqueue(stream, op.run, cost_ms=op.cost_ms, what=f"graph: {op.what}", **extra)
            self.graph_launches += 1
            return (OK,)

    # ------------------------------------------------------------------ device
    def cudaSetDevice(self, device: int) -> tuple[cudaError_t]:  # noqa: N802
        self.current_device[threading.get_ident()] = device  # per thread, as in the CUDA runtime
        return (OK,)

    def cudaGetDeviceProperties(self, device: int) -> tuple[cudaError_t, Any]:  # noqa: N802
        return OK, types.SimpleNamespace(name=self.name.encode(), major=self.cc[0], minor=self.cc[1], integrated=int(self.integrated))

    def cudaRuntimeGetVersion(self) -> tuple[cudaError_t, int]:  # noqa: N802
        return OK, 12090  # the cuda-python wheel's build constant, not the system's CUDA

    def cudaDriverGetVersion(self) -> tuple[cudaError_t, int]:  # noqa: N802
        return OK, 12060

    def cudaGetLastError(self) -> tuple[cudaError_t]:  # noqa: N802
        self.errors_cleared += 1
        return (OK,)


# ---------------------------------------------------------------------- numba.cuda on the simulator


class SimDeviceArray:
    """A numba-like device array in simulated device memory."""

    def __init__(self, sim: CudaSim, shape: tuple[int, ...], dtype: Any, stream: Any = 0) -> None:
        self.sim, self.shape, self.dtype = sim, tuple(int(d) for d in shape), np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        self.ptr = sim.cudaMalloc(self.nbytes)[1]
        self.stream = _handle(stream)

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:  # noqa: PLW3201
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr, False), "version": 3, "strides": None,
                "stream": self.stream or None}  # fmt: skip

    def copy_to_device(self, host: np.ndarray, stream: Any = 0) -> None:
        host = np.ascontiguousarray(host, self.dtype)
        assert host.nbytes == self.nbytes, (host.shape, self.shape)
        self.sim.cudaMemcpyAsync(self.ptr, host.ctypes.data, self.nbytes, cudaMemcpyKind.cudaMemcpyHostToDevice, _handle(stream))
        self._keep = host  # a pageable source is staged at the call; a pinned one must outlive the copy

    def copy_to_host(self, ary: np.ndarray | None = None, stream: Any = 0) -> np.ndarray:
        out = np.empty(self.shape, self.dtype) if ary is None else ary
        self.sim.cudaMemcpyAsync(out.ctypes.data, self.ptr, self.nbytes, cudaMemcpyKind.cudaMemcpyDeviceToHost, _handle(stream))
        return out


class SimStream:
    def __init__(self, handle: int) -> None:
        self.handle = handle

    def __int__(self) -> int:
        return self.handle


class SimEvent:
    def __init__(self, sim: CudaSim) -> None:
        self.sim, self.handle = sim, sim.cudaEventCreate()[1]

    def record(self, stream: Any = 0) -> None:
        self.sim.cudaEventRecord(self.handle, _handle(stream))

    def synchronize(self) -> None:
        self.sim.cudaEventSynchronize(self.handle)

    def query(self) -> bool:
        return int(self.sim.cudaEventQuery(self.handle)[0]) == 0

    def elapsed_time(self, end: SimEvent) -> float:
        err, ms = self.sim.cudaEventElapsedTime(self.handle, end.handle)
        if int(err):
            raise SimError(f"elapsed_time: {cudaError_t(int(err)).name} (an event has not completed: synchronize it first)")
        return ms


def _handle(stream: Any) -> int:
    return int(getattr(stream, "handle", stream) or 0)


class SimNumbaCuda:
    """The part of ``numba.cuda`` :class:`edgecv.cuda.preprocess.GpuPreprocessor` uses, on a :class:`CudaSim`."""

    def __init__(self, sim: CudaSim) -> None:
        self.sim = sim
        self._pinned: dict[int, Any] = {}

    def select_device(self, device: int) -> None:
        self.sim.cudaSetDevice(device)

    def get_current_device(self) -> Any:
        return types.SimpleNamespace(INTEGRATED=int(self.sim.integrated))

    def stream(self) -> SimStream:
        return SimStream(self.sim.cudaStreamCreate()[1])

    def external_stream(self, handle: int) -> SimStream:
        self.sim._stream(handle)
        return SimStream(int(handle))

    def event(self) -> SimEvent:
        return SimEvent(self.sim)

    def device_array(self, shape: tuple[int, ...], dtype: Any, stream: Any = 0) -> SimDeviceArray:
        return SimDeviceArray(self.sim, shape, dtype, stream)

    def to_device(self, host: np.ndarray, stream: Any = 0) -> SimDeviceArray:
        arr = SimDeviceArray(self.sim, host.shape, host.dtype, stream)
        arr.copy_to_device(host, stream)
        return arr

    def _host_array(self, shape: tuple[int, ...], dtype: Any, flags: int) -> np.ndarray:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        addr = self.sim.cudaHostAlloc(nbytes, flags)[1]
        buf = self.sim.blocks[addr].store
        return np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape))).reshape(shape)

    def pinned_array(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return self._host_array(shape, dtype, 0)

    def mapped_array(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return self._host_array(shape, dtype, cudaHostAllocMapped)


class SimKernel:
    """A kernel launch on the simulator: checks that array arguments are device-accessible, runs ``fn`` when the stream runs.

    ``fn(*arrays_as_numpy, *scalars)`` computes the kernel's result with numpy (reading and
    writing device memory through the simulator at run time).
    """

    def __init__(self, sim: CudaSim, fn: Callable[..., None], name: str = "kernel") -> None:
        self.sim, self.fn, self.name, self.launches = sim, fn, name, 0

    def __getitem__(self, config: tuple[Any, Any, Any]) -> Callable[..., None]:
        grid, block, stream = config

        def launch(*args: Any) -> None:
            views: list[tuple[str, Any]] = []
            for i, a in enumerate(args):
                if isinstance(a, (np.ndarray, SimDeviceArray)):
                    ptr = a.ptr if isinstance(a, SimDeviceArray) else a.ctypes.data
                    self.sim._device_side(ptr, a.nbytes, f"{self.name} argument {i}")  # checked at launch, as a bad pointer would fault
                    views.append(("array", (ptr, tuple(a.shape), np.dtype(a.dtype))))
                else:
                    views.append(("value", a))
            self.launches += 1

            def run() -> None:
                arrays: list[Any] = []
                for kind, v in views:
                    if kind == "array":
                        ptr, shape, dtype = v
                        data = self.sim.device_read(ptr, int(np.prod(shape)) * dtype.itemsize, self.name)
                        arrays.append(_DeviceView(ptr, np.frombuffer(data, dtype).reshape(shape).copy()))
                    else:
                        arrays.append(v)
                self.fn(*[a.array if isinstance(a, _DeviceView) else a for a in arrays])
                for a in arrays:
                    if isinstance(a, _DeviceView) and a.array.tobytes() != a.before:
                        self.sim.device_write(a.ptr, a.array.tobytes(), self.name)

            self.sim.enqueue(_handle(stream), run, cost_ms=self.sim.kernel_ms, what=self.name)

        return launch


class _DeviceView:
    def __init__(self, ptr: int, array: np.ndarray) -> None:
        self.ptr, self.array, self.before = ptr, array, array.tobytes()


def letterbox_normalize_reference(src: np.ndarray, dst: np.ndarray, step_y: float, step_x: float, new_h: int, new_w: int, top: int, left: int,
                                  pad: float, mean: np.ndarray, inv_std: np.ndarray, rgb: bool) -> None:  # fmt: skip
    """edgecv.cuda._kernels.letterbox_normalize, vectorized with numpy (same float32 arithmetic), for the simulator."""
    f32 = np.float32
    out_h, out_w = dst.shape[2], dst.shape[3]
    src_h, src_w = src.shape[0], src.shape[1]
    cy = np.arange(out_h)[:, None] - top + np.zeros((1, out_w), int)
    cx = np.arange(out_w)[None, :] - left + np.zeros((out_h, 1), int)
    inside = (cy >= 0) & (cx >= 0) & (cy < new_h) & (cx < new_w)
    fy = (cy.astype(f32) + f32(0.5)) * f32(step_y) - f32(0.5)
    fx = (cx.astype(f32) + f32(0.5)) * f32(step_x) - f32(0.5)
    y0, x0 = np.floor(fy).astype(int), np.floor(fx).astype(int)
    wy, wx = (fy - y0.astype(f32)).astype(f32), (fx - x0.astype(f32)).astype(f32)
    for c0, w, hi in ((y0, wy, src_h), (x0, wx, src_w)):
        low, high = c0 < 0, c0 >= hi - 1
        c0[low], w[low] = 0, 0
        c0[high], w[high] = hi - 1, 0
    y1, x1 = np.minimum(y0 + 1, src_h - 1), np.minimum(x0 + 1, src_w - 1)
    for k in range(3):
        c = 2 - k if rgb else k
        s = src[..., c].astype(f32)
        top_row = s[y0, x0] * (f32(1) - wx) + s[y0, x1] * wx
        bottom = s[y1, x0] * (f32(1) - wx) + s[y1, x1] * wx
        value = np.clip(np.floor(top_row * (f32(1) - wy) + bottom * wy + f32(0.5)), 0, 255).astype(f32)
        value = np.where(inside, value, f32(pad))
        dst[0, k] = (value * f32(1.0 / 255.0) - f32(mean[k])) * f32(inv_std[k])
