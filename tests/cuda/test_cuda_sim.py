"""The CUDA simulator itself: each property the GPU-path tests rely on (deferred work, separate device memory, poison, events, capture)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from cuda_sim import POISON, CudaSim, SimError, cudaError_t, cudaHostAllocMapped, cudaMemcpyKind

H2D, D2H = cudaMemcpyKind.cudaMemcpyHostToDevice, cudaMemcpyKind.cudaMemcpyDeviceToHost


def _pinned(sim: CudaSim, values: np.ndarray) -> tuple[int, np.ndarray]:
    ptr = sim.cudaMallocHost(values.nbytes)[1]
    view = np.frombuffer((ctypes.c_byte * values.nbytes).from_address(ptr), values.dtype)
    view[:] = values
    return ptr, view


def test_work_waits_for_a_synchronization() -> None:
    sim = CudaSim()
    stream = sim.cudaStreamCreate()[1]
    dev = sim.cudaMalloc(16)[1]
    src, src_view = _pinned(sim, np.arange(4, dtype=np.float32))
    dst, dst_view = _pinned(sim, np.zeros(4, np.float32))
    sim.cudaMemcpyAsync(dev, src, 16, H2D, stream)
    sim.cudaMemcpyAsync(dst, dev, 16, D2H, stream)
    assert dst_view.tolist() == [0, 0, 0, 0]  # nothing ran yet
    src_view[:] = 7  # the host changes the pinned source before the copy ran: the copy sees the new values
    sim.cudaStreamSynchronize(stream)
    assert dst_view.tolist() == [7, 7, 7, 7]


def test_pageable_memory_is_staged_or_waited_for() -> None:
    sim = CudaSim()
    stream = sim.cudaStreamCreate()[1]
    dev = sim.cudaMalloc(16)[1]
    host = np.arange(4, dtype=np.float32)
    sim.cudaMemcpyAsync(dev, host.ctypes.data, 16, H2D, stream)
    host[:] = -1  # pageable: CUDA staged it at the call
    out = np.zeros(4, np.float32)
    sim.cudaMemcpyAsync(out.ctypes.data, dev, 16, D2H, stream)  # pageable destination: done when the call returns
    assert out.tolist() == [0, 1, 2, 3]


def test_device_memory_is_not_host_memory() -> None:
    sim = CudaSim()
    dev = sim.cudaMalloc(16)[1]
    sim.cudaMemcpy(dev, np.ones(4, np.float32).ctypes.data, 16, H2D)
    host_view = np.frombuffer((ctypes.c_float * 4).from_address(dev), np.float32)
    assert np.isnan(host_view).all()  # a host read through a device pointer sees poison, not the data
    assert np.frombuffer(sim.peek(dev, 16), np.float32).tolist() == [1, 1, 1, 1]
    ctypes.memmove(dev, np.zeros(4, np.float32).ctypes.data, 16)  # a host write through a device pointer...
    with pytest.raises(SimError, match="host wrote into device memory"):
        sim.cudaDeviceSynchronize()  # ...is caught at the next synchronization
    sim = CudaSim()
    dev, (host, _) = sim.cudaMalloc(16)[1], _pinned(sim, np.zeros(4, np.float32))
    with pytest.raises(SimError, match="host pointer belongs"):
        sim.cudaMemcpyAsync(dev, dev, 16, H2D, 0)  # device pointer as the host side
    with pytest.raises(SimError, match="needs a device pointer"):
        sim.cudaMemcpyAsync(host, host, 16, H2D, 0)  # host pointer as the device side
    with pytest.raises(SimError, match="never allocated"):
        sim.cudaMemcpyAsync(dev + 4096, host, 16, H2D, 0)
    with pytest.raises(SimError, match="run past the end"):
        sim.cudaMemcpyAsync(dev, host, 32, H2D, 0)


def test_freed_memory_is_poisoned_and_cannot_be_used() -> None:
    sim = CudaSim()
    dev = sim.cudaMalloc(16)[1]
    host, view = _pinned(sim, np.ones(4, np.float32))
    sim.cudaFreeHost(host)
    assert np.isnan(view).all()
    with pytest.raises(SimError, match="was freed"):
        sim.cudaMemcpyAsync(dev, host, 16, H2D, 0)
    sim.cudaFree(dev)
    with pytest.raises(SimError, match="freed device memory"):
        sim.cudaMemcpy(np.zeros(4, np.float32).ctypes.data, dev, 16, D2H)
    with pytest.raises(SimError, match="freed twice"):
        sim.cudaFree(dev)
    with pytest.raises(SimError, match="cudaFreeHost"):
        sim.cudaFree(sim.cudaMallocHost(16)[1])


def test_mapped_memory_is_read_in_place_by_the_device() -> None:
    sim = CudaSim(integrated=True)
    mapped = sim.cudaHostAlloc(16, cudaHostAllocMapped)[1]
    assert sim.cudaHostGetDevicePointer(mapped, 0) == (cudaError_t.cudaSuccess, mapped)  # same address on an integrated GPU
    assert sim.cudaGetDeviceProperties(0)[1].integrated == 1
    view = np.frombuffer((ctypes.c_float * 4).from_address(mapped), np.float32)
    view[:] = 3
    stream = sim.cudaStreamCreate()[1]
    dev = sim.cudaMalloc(16)[1]
    sim.cudaMemcpyAsync(dev, mapped, 16, cudaMemcpyKind.cudaMemcpyDeviceToDevice, stream)  # a device-side read of mapped memory
    view[:] = 5  # before the stream ran: the device reads 5
    sim.cudaStreamSynchronize(stream)
    assert np.frombuffer(sim.peek(dev, 16), np.float32).tolist() == [5] * 4
    pinned = sim.cudaMallocHost(16)[1]
    with pytest.raises(SimError, match="not mapped"):
        sim.cudaMemcpyAsync(dev, pinned, 16, cudaMemcpyKind.cudaMemcpyDeviceToDevice, stream)


def test_events_record_simulated_time_and_order_streams() -> None:
    sim = CudaSim(bandwidth_gb_s=1.0)  # 1e6 bytes per ms
    a, b = sim.cudaStreamCreate()[1], sim.cudaStreamCreate()[1]
    start, end, handoff = (sim.cudaEventCreate()[1] for _ in range(3))
    dev = sim.cudaMalloc(2_000_000)[1]
    host = sim.cudaMallocHost(2_000_000)[1]
    sim.cudaEventRecord(start, a)
    sim.cudaMemcpyAsync(dev, host, 2_000_000, H2D, a)
    sim.cudaEventRecord(end, a)
    assert sim.cudaEventElapsedTime(start, end)[0] == cudaError_t.cudaErrorNotReady  # not run yet
    assert sim.cudaEventElapsedTime(start, handoff)[0] == cudaError_t.cudaErrorInvalidResourceHandle  # never recorded
    sim.cudaEventRecord(handoff, a)
    sim.cudaStreamWaitEvent(b, handoff, 0)
    out = sim.cudaMallocHost(4)[1]
    sim.cudaMemcpyAsync(out, dev, 4, D2H, b)
    sim.cudaStreamSynchronize(b)  # b waits for a's copy: a ran up to the event
    assert sim.ran[:3] == [f"record event {start}", "cudaMemcpyAsync cudaMemcpyHostToDevice", f"record event {end}"]
    err, ms = sim.cudaEventElapsedTime(start, end)
    assert err == 0 and ms == pytest.approx(2.005)


def test_capture_records_and_launch_replays_deferred() -> None:
    sim = CudaSim()
    stream = sim.cudaStreamCreate()[1]
    dev = sim.cudaMalloc(16)[1]
    host, view = _pinned(sim, np.full(4, 1, np.float32))
    sim.cudaStreamBeginCapture(stream, 1)
    sim.cudaMemcpyAsync(dev, host, 16, H2D, stream)
    with pytest.raises(SimError, match="being captured"):
        sim.cudaStreamSynchronize(stream)
    err, graph = sim.cudaStreamEndCapture(stream)
    assert err == 0 and sim.ran == []  # captured, not run
    err, exe = sim.cudaGraphInstantiate(graph, 0)
    view[:] = 9
    sim.cudaGraphLaunch(exe, stream)
    sim.cudaStreamSynchronize(stream)
    assert np.frombuffer(sim.peek(dev, 16), np.float32).tolist() == [9] * 4
    assert POISON == 0xFF
