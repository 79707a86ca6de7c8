"""The machine a benchmark ran on: CPU, memory, GPU, CUDA, Jetson power state, library versions.

Every field is read when it can be and recorded as absent (``None``, ``[]``, ``{}``) when it cannot;
nothing is inferred (JetPack is not derived from L4T). Nothing needs root: stock JetPack's
``jetson_clocks --show`` fails for normal users, so ``jetson["jetson_clocks"]`` is ``None`` unless the
bench runs as root. torch and TensorRT are never imported; their versions come from package metadata
(or, for JetPack's apt TensorRT, which has none, the ``__version__`` line of its ``__init__.py``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecv.machine import device_tree_model, is_jetson, l4t_release, read_text

log = logging.getLogger(__name__)

Runner = Callable[[list[str]], "str | None"]

#: Environment variables that change benchmark results; only those that are set are recorded.
ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_CORETYPE", "CUDA_VISIBLE_DEVICES", "CUDA_LAUNCH_BLOCKING")
_TIMEOUT_S = 3.0
_TEGRA_ZONE_OFF = -256000  # Tegra reports -256 °C for a thermal zone whose sensor is powered off
# (CPU implementer, CPU part) from /proc/cpuinfo -> core name; ARM kernels have no "model name".
_ARM_PARTS = {
    (0x41, 0xD03): "ARM Cortex-A53", (0x41, 0xD05): "ARM Cortex-A55", (0x41, 0xD07): "ARM Cortex-A57",
    (0x41, 0xD08): "ARM Cortex-A72", (0x41, 0xD0B): "ARM Cortex-A76", (0x41, 0xD0C): "ARM Neoverse-N1",
    (0x41, 0xD40): "ARM Neoverse-V1", (0x41, 0xD42): "ARM Cortex-A78AE", (0x41, 0xD4F): "ARM Neoverse-V2",
    (0x4E, 0x003): "NVIDIA Denver 2", (0x4E, 0x004): "NVIDIA Carmel",
}  # fmt: skip


def run_command(cmd: list[str]) -> str | None:
    """Return ``cmd``'s stdout, or ``None`` when it is missing, exits non-zero or runs over 3 s. Never raises."""
    if not cmd or shutil.which(cmd[0]) is None:
        return None
    try:
        proc = subprocess.run(
            cmd, capture_output=True, encoding="utf-8", errors="replace", timeout=_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("%s: %s", " ".join(cmd), exc)
        return None
    if proc.returncode != 0:
        log.debug("%s exited %d: %s", " ".join(cmd), proc.returncode, proc.stderr.strip()[:200])
        return None
    return proc.stdout


def collect_environment(*, root: Path = Path("/"), run: Runner | None = None) -> dict[str, Any]:
    """Describe this machine for a benchmark report. The hostname is not recorded.

    Args:
        root: prefix for the ``proc/``, ``sys/``, ``etc/`` and ``usr/local/cuda/`` files read (tests use a fake tree).
        run: runs a command, returns its stdout or ``None``; defaults to :func:`run_command`. Exceptions it
            raises are logged at DEBUG and treated as ``None``.

    Returns:
        A JSON-ready dict: ``platform``, ``machine``, ``python``, ``cpu_model``, ``cpu_cores``, ``cpu_cores_usable``
        (CPU affinity), ``cpu_governor``, ``memory_gb`` (GiB), ``versions``, ``onnxruntime_providers``, ``gpu``
        (``[{name, memory_mb, driver, compute_capability, integrated}]``), ``cuda_version`` and its
        ``cuda_version_source`` (``"nvidia-smi"``: the driver's; ``"version.json"``/``"nvcc"``: the toolkit's),
        ``jetson`` (``None`` off Jetson), ``temperatures_c`` and ``env``.
    """
    runner = _never_raising(run or run_command)
    dt_model = device_tree_model(root)
    jetson_board = is_jetson(root)
    mem = re.search(r"^MemTotal:\s*(\d+)\s*kB", read_text(root / "proc/meminfo") or "", re.MULTILINE)
    temps = _temperatures(root)
    gpus = _gpus(runner, integrated=True if jetson_board else None)
    if not gpus and jetson_board:
        gpus = [{"name": dt_model, "memory_mb": None, "driver": None, "compute_capability": None, "integrated": True}]
    cuda_version, cuda_source = _cuda_version(root, runner)
    jetson = None
    if jetson_board:
        jetpack = re.match(r"\d+(\.\d+)+", runner(["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"]) or "")
        jetson = {
            "model": dt_model,
            "l4t": l4t_release(root),
            "jetpack": jetpack[0] if jetpack else None,  # only from the nvidia-jetpack package
            "power_mode": _power_mode(runner(["nvpmodel", "-q"])),
            "jetson_clocks": _jetson_clocks(runner(["jetson_clocks", "--show"])),
            "temperatures_c": temps,
        }
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(root) or dt_model,
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_governor": (read_text(root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") or "").strip() or None,
        "memory_gb": round(int(mem[1]) / 1024**2, 1) if mem else None,
        "versions": _versions(),
        "onnxruntime_providers": _ort_providers(),
        "gpu": gpus,
        "cuda_version": cuda_version,
        "cuda_version_source": cuda_source,
        "jetson": jetson,
        "temperatures_c": temps,
        "env": {k: os.environ[k] for k in ENV_VARS if k in os.environ},
    }


def format_environment(env: dict[str, Any]) -> list[str]:
    """Three to six short lines describing ``env`` (from :func:`collect_environment`) above a bench table."""
    v = env.get("versions") or {}
    cores, usable, governor = env.get("cpu_cores"), env.get("cpu_cores_usable"), env.get("cpu_governor")
    cpu = _join(
        f"{cores} cores", usable not in (None, cores) and f"{usable} usable", governor and f"governor {governor}"
    )
    mem = f", {env['memory_gb']} GB" if env.get("memory_gb") is not None else ""
    lines = [
        f"Host: {env.get('platform')}, Python {env.get('python')}",
        f"CPU: {env.get('cpu_model') or 'unknown'} ({cpu}){mem}",
        "GPU: " + (_gpu_summary(env) or "none"),
    ]
    if jetson := env.get("jetson"):
        mode = jetson.get("power_mode") or {}
        mode_id = f" ({mode['id']})" if mode.get("id") is not None else ""
        clocks = {True: "on", False: "off"}.get(jetson.get("jetson_clocks"), "unknown")
        model = re.sub(r"^(NVIDIA )?(Jetson )?", "", jetson.get("model") or "unknown model")
        l4t, jetpack = jetson.get("l4t"), jetson.get("jetpack")
        mode_text = mode and f"power mode {mode['name']}{mode_id}"
        parts = (model, l4t and f"L4T {l4t}", jetpack and f"JetPack {jetpack}", mode_text, f"jetson_clocks {clocks}")
        lines.append("Jetson: " + _join(*parts))
    providers = ", ".join(env.get("onnxruntime_providers") or [])
    ort = f"onnxruntime {v.get('onnxruntime')}" + (f" ({providers})" if providers else "")
    lines.append(_join(ort, v.get("numpy") and f"numpy {v['numpy']}", v.get("opencv") and f"OpenCV {v['opencv']}"))
    if env.get("env"):
        lines.append("Env: " + ", ".join(f"{k}={val}" for k, val in env["env"].items()))
    return lines


def _gpu_summary(env: dict[str, Any]) -> str:
    """``"2x NVIDIA H100 (81559 MB, driver 550.54.15, sm 9.0), CUDA 12.4, TensorRT 10.3.0"``; ``""`` with no GPU."""
    counts: dict[str, int] = {}
    for gpu in env.get("gpu") or []:
        mem, driver, cc = gpu.get("memory_mb"), gpu.get("driver"), gpu.get("compute_capability")
        details = _join(mem is not None and f"{mem} MB", driver and f"driver {driver}", cc and f"sm {cc}")
        desc = f"{gpu.get('name')} ({details})" if details else str(gpu.get("name"))
        counts[desc] = counts.get(desc, 0) + 1
    if not counts:
        return ""
    cuda, trt = env.get("cuda_version"), (env.get("versions") or {}).get("tensorrt")
    names = "; ".join(desc if n == 1 else f"{n}x {desc}" for desc, n in counts.items())
    return _join(names, cuda and f"CUDA {cuda}", trt and f"TensorRT {trt}")


def _join(*parts: Any) -> str:
    return ", ".join(p for p in parts if p)


def _never_raising(run: Runner) -> Runner:
    def safe(cmd: list[str]) -> str | None:
        try:
            return run(cmd)
        except Exception as exc:  # a broken runner must not stop a benchmark
            log.debug("%s: %s", " ".join(cmd), exc)
            return None

    return safe


def _cpu_model(root: Path) -> str | None:
    """``model name`` (x86); on ARM the core named by implementer/part, else ``Hardware``, else the raw ids."""
    fields: dict[str, str] = {}
    for key, sep, value in (line.partition(":") for line in (read_text(root / "proc/cpuinfo") or "").splitlines()):
        if sep and value.strip():
            fields.setdefault(key.strip().lower(), value.strip())
    impl, part = fields.get("cpu implementer"), fields.get("cpu part")
    try:
        known = _ARM_PARTS.get((int(impl, 16), int(part, 16))) if impl and part else None
    except ValueError:
        known = None
    raw = f"ARM implementer {impl} part {part}" if impl and part else None
    return fields.get("model name") or known or fields.get("hardware") or raw


def _temperatures(root: Path) -> dict[str, float]:
    """``{zone type: °C}`` from ``sys/class/thermal``; a repeated type gets ``_<zone number>`` appended."""
    temps: dict[str, float] = {}
    for zone in sorted((root / "sys/class/thermal").glob("thermal_zone*"), key=lambda p: (len(p.name), p.name)):
        try:
            milli = int((read_text(zone / "temp") or "").strip())
        except ValueError:
            continue  # missing, or EIO from a powered-off sensor
        if milli != _TEGRA_ZONE_OFF:
            kind = (read_text(zone / "type") or "").strip() or zone.name
            temps[f"{kind}_{zone.name[12:]}" if kind in temps else kind] = round(milli / 1000, 1)
    return temps


def _gpus(run: Runner, *, integrated: bool | None) -> list[dict[str, Any]]:
    """Parse ``nvidia-smi --query-gpu``; drivers older than ~510 reject ``compute_cap``, so retry without it."""
    for fields in ("name,memory.total,driver_version,compute_cap", "name,memory.total,driver_version"):
        n, gpus = fields.count(",") + 1, list[dict[str, Any]]()
        for line in (run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"]) or "").splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) < n or not parts[0]:
                continue
            cut = len(parts) - n + 1  # > 1 when the name itself holds a comma
            values = [None if p.startswith("[") or p in ("", "N/A") else p for p in parts[cut:]]  # "[N/A]"
            mem, driver, cc = (values + [None])[:3]
            gpu = {"name": ", ".join(parts[:cut]), "memory_mb": int(mem) if mem and mem.isdigit() else None}
            gpus.append({**gpu, "driver": driver, "compute_capability": cc, "integrated": integrated})
        if gpus:
            return gpus
    return []


def _cuda_version(root: Path, run: Runner) -> tuple[str | None, str | None]:
    """``(version, source)`` from nvidia-smi's header, else ``/usr/local/cuda/version.json``, else ``nvcc``."""
    if smi := re.search(r"CUDA Version:\s*(\d+(?:\.\d+)*)", run(["nvidia-smi"]) or ""):
        return smi[1], "nvidia-smi"
    try:
        version = json.loads(read_text(root / "usr/local/cuda/version.json") or "")["cuda"]["version"]
        if isinstance(version, str) and version:
            return version, "version.json"
    except (ValueError, KeyError, TypeError):
        pass
    local_nvcc = root / "usr/local/cuda/bin/nvcc"  # JetPack does not put it on PATH
    for nvcc in ["nvcc"] + ([str(local_nvcc)] if local_nvcc.is_file() else []):
        if found := re.search(r"release (\d+\.\d+)", run([nvcc, "--version"]) or ""):
            return found[1], "nvcc"
    return None, None


def _power_mode(out: str | None) -> dict[str, Any] | None:
    """``nvpmodel -q`` output (``"NV Power Mode: MAXN\\n0"``) -> ``{"name": "MAXN", "id": 0}``."""
    if not (found := re.search(r"NV Power Mode:\s*(\S.*?)\s*$", out or "", re.MULTILINE)):
        return None
    mode_id = re.search(r"^\s*(\d+)\s*$", (out or "")[found.end() :], re.MULTILINE)
    return {"name": found[1], "id": int(mode_id[1]) if mode_id else None}


def _jetson_clocks(out: str | None) -> bool | None:
    """From ``jetson_clocks --show``: on when online CPUs and the GPU have MinFreq == MaxFreq and EMC has
    ``FreqOverride=1``, as jetson_clocks sets them (a low power mode alone can pin the CPUs). ``None`` if unparsable."""
    checks: list[bool] = []
    gpu_seen = False
    for line in (ln.strip() for ln in (out or "").splitlines()):
        freq = re.search(r"MinFreq=(\d+)\s+MaxFreq=(\d+)", line)
        if freq and (line.startswith("GPU ") or (re.match(r"cpu\d+:", line) and "Online=0" not in line)):
            checks.append(freq[1] == freq[2])
            gpu_seen = gpu_seen or line.startswith("GPU ")
        elif override := re.match(r"EMC .*FreqOverride=(\d)", line):
            checks.append(override[1] == "1")
    return all(checks) if gpu_seen else None


def _dist_version(*dists: str) -> str | None:
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except Exception:  # PackageNotFoundError, or broken metadata that must not stop a benchmark
            continue
    return None


def _source_version(module: str) -> str | None:
    """``__version__`` read from a package's ``__init__.py`` without importing it (JetPack's apt TensorRT has no dist)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    text = read_text(Path(spec.origin)) if spec and spec.origin and spec.origin.endswith(".py") else None
    found = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", text or "", re.MULTILINE)
    return found[1] if found else None


def _module_version(module: str) -> str | None:
    try:
        return str(importlib.import_module(module).__version__)
    except Exception:  # not installed, or a broken build (cv2 can raise more than ImportError)
        return None


def _versions() -> dict[str, str | None]:
    trt_dists = ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt_libs")
    return {
        "edgecv": _dist_version("edgecv") or _module_version("edgecv"),
        "numpy": _dist_version("numpy"),
        "onnxruntime": _dist_version("onnxruntime", "onnxruntime-gpu") or _module_version("onnxruntime"),
        "opencv": _module_version("cv2"),  # JetPack's apt OpenCV has no pip metadata
        "tensorrt": _dist_version(*trt_dists) or _source_version("tensorrt"),
        "cuda_python": _dist_version("cuda-python", "cuda-bindings"),
        "torch": _dist_version("torch"),
    }


def _ort_providers() -> list[str] | None:
    try:
        import onnxruntime

        return list(onnxruntime.get_available_providers())
    except Exception as exc:
        log.debug("onnxruntime providers: %s", exc)
        return None
