"""Engine manifests: what a TensorRT plan was built with, checked before it is deserialized.

A plan only runs with the TensorRT version that built it (unless built
version-compatible, which the same or a newer TensorRT runtime accepts) and, unless built
hardware-compatible, only on the GPU architecture it was built for. Deserializing a
mismatched plan gives a cryptic "version tag" error or worse, so the manifest (a JSON
sidecar, ``model.engine.json``, leaving the plan itself plain for trtexec, DeepStream and
Triton) is compared with the machine first, and a mismatch is one line naming what
differs and the exact command that rebuilds the engine.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecv.errors import EngineError


def build_command(onnx_path: Path | str, engine_path: Path | str, args: Sequence[str]) -> str:
    """The ``edgecv build-engine`` command line that (re)builds this engine."""
    return shlex.join(["edgecv", "build-engine", str(onnx_path), "-o", str(engine_path), *args])


def check_compatible(info: dict[str, Any], env: dict[str, Any], engine_path: Path) -> None:
    """Raise EngineError when ``info`` (the manifest's engine section) cannot run on ``env``.

    Args:
        info: ``tensorrt``, ``compute_capability``, ``gpu``, ``version_compatible``,
            ``hardware_compat``, ``build_command``, ``l4t`` as written by ``build-engine``.
        env: the same keys for this machine (:func:`current_environment`).
    """
    rebuild = info.get("build_command") or f"edgecv build-engine MODEL.onnx -o {engine_path}"
    built, here = str(info.get("tensorrt", "?")), str(env.get("tensorrt", "?"))
    problems = []
    if built != here:
        # a version-compatible plan runs on the same or a later TensorRT (later majors too:
        # "engines built with TensorRT 10 work with TensorRT 11"), never on an older one
        b, h = _version(built), _version(here)
        portable = bool(info.get("version_compatible")) and b is not None and h is not None and h >= b
        if not portable:
            problems.append(f"built with TensorRT {built}, this machine has TensorRT {here}")
    cc_built, cc_here = info.get("compute_capability"), env.get("compute_capability")
    if cc_built and cc_here and cc_built != cc_here:
        compat = info.get("hardware_compat")
        if not (compat == "ampere+" and _sm(cc_here) >= 80 and _sm(cc_built) >= 80):
            problems.append(f"built for {info.get('gpu', '?')} (sm_{_sm(cc_built)}), this GPU is {env.get('gpu', '?')} (sm_{_sm(cc_here)})")
    if info.get("dla_core") is not None and not env.get("dla_cores"):
        problems.append(f"built for DLA core {info['dla_core']}, this device has no DLA")
    if problems:
        raise EngineError(
            f"{engine_path.name} cannot run here: {'; '.join(problems)}",
            hint=f"rebuild it on this machine: {rebuild}",
        )


def _version(version: str) -> tuple[int, ...] | None:
    parts = version.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else None


def _sm(cc: str | None) -> int:
    major, _, minor = str(cc or "0.0").partition(".")
    return int(major or 0) * 10 + int(minor or 0)


def current_environment(trt: Any, cudart: Any = None, device: int = 0) -> dict[str, Any]:
    """What :func:`check_compatible` compares, and nothing more: TensorRT and the driver's CUDA versions,
    the GPU's name and compute capability, and the L4T release (Jetson, from ``/etc/nv_tegra_release``).

    Cheap and bounded: no subprocess, no survey of the machine (that is :mod:`edgecv.bench.environment`'s job,
    for benchmark reports), so loading an engine cannot stall on ``nvidia-smi`` or ``nvpmodel``.
    """
    from edgecv.engine.trt_compat import check_cuda
    from edgecv.machine import l4t_release

    env: dict[str, Any] = {"tensorrt": trt.__version__}
    if cudart is not None:
        props = check_cuda(cudart, cudart.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        env |= {"gpu": name.rstrip("\x00"), "compute_capability": f"{props.major}.{props.minor}"}
        # the driver's CUDA version: cudaRuntimeGetVersion only gives the version cuda-python was built for
        version = check_cuda(cudart, cudart.cudaDriverGetVersion(), "cudaDriverGetVersion")
        env["cuda"] = f"{version // 1000}.{version % 1000 // 10}"
    env["l4t"] = l4t_release()
    return env
