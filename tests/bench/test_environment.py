"""collect_environment on this machine, on a fake Jetson tree and with a fake dGPU nvidia-smi; format_environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from edgecv._optional import is_available
from edgecv.bench import environment
from edgecv.bench.environment import collect_environment, format_environment, run_command

REPO = Path(__file__).resolve().parents[2]
KEYS = {
    "platform", "machine", "python", "cpu_model", "cpu_cores", "cpu_cores_usable", "cpu_governor", "memory_gb",
    "versions", "onnxruntime_providers", "gpu", "cuda_version", "cuda_version_source", "jetson", "temperatures_c", "env",
}  # fmt: skip
VERSION_KEYS = {"edgecv", "numpy", "onnxruntime", "opencv", "tensorrt", "cuda_python", "torch"}

NVPMODEL = "NVPM WARN: patching tpc_pg_mask: (0x0:0x0)\nNV Power Mode: MAXN\n0\n"
CLOCKS_ON = """SOC family:tegra234  Machine:NVIDIA Jetson AGX Orin Developer Kit
Online CPUs: 0-11
cpu0: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
cpu1:  Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
cpu2: Online=0 Governor=schedutil MinFreq=729600 MaxFreq=2201600 CurrentFreq=729600 IdleStates: WFI=1 c7=1
GPU MinFreq=1300500000 MaxFreq=1300500000 CurrentFreq=1300500000
EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=3199000000 FreqOverride=1
DLA0_CORE:   Online=1 MinFreq=0 MaxFreq=1600000000 CurrentFreq=1600000000
FAN Dynamic Speed control=active hwmon4_pwm1=255
NV Power Mode: MAXN
"""
# Jetson Nano in 5W mode before jetson_clocks: the mode pins the CPUs, but the GPU still scales.
CLOCKS_OFF = """cpu0: Online=1 Governor=schedutil MinFreq=921600 MaxFreq=921600 CurrentFreq=921600 IdleStates: WFI=1 c7=1
GPU MinFreq=76800000 MaxFreq=614400000 CurrentFreq=460800000
EMC MinFreq=204000000 MaxFreq=1600000000 CurrentFreq=1600000000 FreqOverride=0
"""
SMI_HEADER = """Tue Jun  4 10:00:00 2024
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |
|-----------------------------------------+------------------------+----------------------+
"""
SMI_QUERY = ["--query-gpu=name,memory.total,driver_version,compute_cap", "--format=csv,noheader,nounits"]
SMI_QUERY_OLD = ["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"]


def _fake_run(outputs: dict[tuple[str, ...], str], calls: list[list[str]]) -> Callable[[list[str]], str | None]:
    def run(cmd: list[str]) -> str | None:
        calls.append(cmd)
        return outputs.get(tuple(cmd))

    return run


def _write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


@pytest.fixture
def jetson_root(tmp_path: Path) -> Path:
    """A JetPack 6 (L4T 36.3) AGX Orin: device tree, tegra release, cpuinfo without "model name", thermal zones."""
    _write(tmp_path, "proc/device-tree/model", "NVIDIA Jetson AGX Orin Developer Kit\x00")
    _write(
        tmp_path,
        "etc/nv_tegra_release",
        "# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64, DATE: Mon May  6 17:34:21 UTC 2024\n"
        "# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n",
    )
    core = "processor\t: {i}\nBogoMIPS\t: 62.50\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd42\nCPU revision\t: 1\n\n"  # noqa: E501
    _write(tmp_path, "proc/cpuinfo", "".join(core.format(i=i) for i in range(2)))
    _write(tmp_path, "proc/meminfo", "MemTotal:       64335836 kB\nMemFree:        60000000 kB\n")
    _write(tmp_path, "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "schedutil\n")
    for zone, (kind, temp) in enumerate(
        [("cpu-thermal", "45312"), ("gpu-thermal", "43968"), ("cv0-thermal", "-256000"), ("tj-thermal", "bad")]
        + [("cpu-thermal", "46000")] * 7  # zones 4..10: repeated type, and thermal_zone10 sorts after thermal_zone9
    ):
        _write(tmp_path, f"sys/class/thermal/thermal_zone{zone}/type", kind + "\n")
        _write(tmp_path, f"sys/class/thermal/thermal_zone{zone}/temp", temp + "\n")
    return tmp_path


JETSON_OUTPUTS = {
    ("nvpmodel", "-q"): NVPMODEL,
    ("jetson_clocks", "--show"): CLOCKS_ON,
    ("dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"): "6.0+b106",
}


def test_this_machine_is_recorded_without_guessing() -> None:
    env = collect_environment()
    assert set(env) == KEYS and set(env["versions"]) == VERSION_KEYS
    json.dumps(env)
    host = os.uname().nodename
    assert "hostname" not in json.dumps(env) and (len(host) < 6 or host not in json.dumps(env))
    assert isinstance(env["platform"], str) and isinstance(env["python"], str) and env["cpu_cores"] == os.cpu_count()
    assert isinstance(env["versions"]["onnxruntime"], str) and isinstance(env["versions"]["numpy"], str)
    assert "CPUExecutionProvider" in env["onnxruntime_providers"]
    assert env["cuda_version"] is None or isinstance(env["cuda_version"], str)  # this host has nvcc 13.0
    assert isinstance(env["temperatures_c"], dict)
    if shutil.which("nvidia-smi") is None and not Path("/etc/nv_tegra_release").exists():
        assert env["gpu"] == []
    if not Path("/etc/nv_tegra_release").exists():
        assert env["jetson"] is None
    if not is_available("tensorrt"):
        assert env["versions"]["tensorrt"] is None


def test_does_not_import_torch_or_tensorrt() -> None:
    code = (
        "import json, sys\n"
        "from edgecv.bench.environment import collect_environment\n"
        "json.dumps(collect_environment())\n"
        "print(json.dumps([m for m in ('torch', 'tensorrt') if m in sys.modules]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=60)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_fake_jetson(jetson_root: Path) -> None:
    _write(jetson_root, "usr/local/cuda/version.json", json.dumps({"cuda": {"name": "CUDA SDK", "version": "12.6.68"}}))
    calls: list[list[str]] = []
    env = collect_environment(root=jetson_root, run=_fake_run(JETSON_OUTPUTS, calls))
    json.dumps(env)
    temps = {"cpu-thermal": 45.3, "gpu-thermal": 44.0, **{f"cpu-thermal_{z}": 46.0 for z in range(4, 11)}}
    assert list(temps) == list(env["temperatures_c"])  # numeric zone order
    assert env["jetson"] == {
        "model": "NVIDIA Jetson AGX Orin Developer Kit",
        "l4t": "36.3.0",
        "jetpack": "6.0",
        "power_mode": {"name": "MAXN", "id": 0},
        "jetson_clocks": True,
        "temperatures_c": temps,
    }
    assert env["temperatures_c"] == temps
    name = "NVIDIA Jetson AGX Orin Developer Kit"
    assert env["gpu"] == [
        {"name": name, "memory_mb": None, "driver": None, "compute_capability": None, "integrated": True}
    ]
    assert env["cpu_model"] == "ARM Cortex-A78AE"
    assert env["cpu_governor"] == "schedutil"
    assert env["memory_gb"] == 61.4  # 64335836 KiB in GiB
    assert (env["cuda_version"], env["cuda_version_source"]) == ("12.6.68", "version.json")
    assert not any(cmd[0] == "sudo" for cmd in calls)


def test_fake_jetson_with_nvidia_smi_and_clocks_off(jetson_root: Path) -> None:
    """JetPack 6 ships an nvidia-smi that reports the iGPU with no memory total."""
    outputs = {
        **JETSON_OUTPUTS,
        ("jetson_clocks", "--show"): CLOCKS_OFF,
        ("nvidia-smi", *SMI_QUERY): "Orin (nvgpu), [N/A], 540.3.0, 8.7\n",
        ("nvidia-smi",): SMI_HEADER.replace("12.4", "12.6"),
    }
    env = collect_environment(root=jetson_root, run=_fake_run(outputs, []))
    assert env["gpu"] == [
        {
            "name": "Orin (nvgpu)",
            "memory_mb": None,
            "driver": "540.3.0",
            "compute_capability": "8.7",
            "integrated": True,
        }
    ]
    assert (env["cuda_version"], env["cuda_version_source"]) == ("12.6", "nvidia-smi")
    assert env["jetson"]["jetson_clocks"] is False


def test_fake_jetson_commands_missing(jetson_root: Path) -> None:
    env = collect_environment(root=jetson_root, run=lambda cmd: None)
    jetson = env["jetson"]
    assert jetson["l4t"] == "36.3.0" and jetson["model"] == "NVIDIA Jetson AGX Orin Developer Kit"
    assert jetson["jetpack"] is None and jetson["power_mode"] is None and jetson["jetson_clocks"] is None
    assert env["cuda_version"] is None and env["cuda_version_source"] is None
    assert env["gpu"][0]["integrated"] is True


def test_fake_dgpu(tmp_path: Path) -> None:
    line = "NVIDIA H100 80GB HBM3, 81559, 550.54.15, 9.0\n"
    outputs = {("nvidia-smi", *SMI_QUERY): line * 2, ("nvidia-smi",): SMI_HEADER}
    env = collect_environment(root=tmp_path, run=_fake_run(outputs, []))
    json.dumps(env)
    h100 = {"name": "NVIDIA H100 80GB HBM3", "memory_mb": 81559, "driver": "550.54.15", "compute_capability": "9.0"}
    assert env["gpu"] == [{**h100, "integrated": None}] * 2
    assert (env["cuda_version"], env["cuda_version_source"]) == ("12.4", "nvidia-smi")
    assert env["jetson"] is None and env["temperatures_c"] == {}
    assert env["cpu_model"] is None and env["memory_gb"] is None and env["cpu_governor"] is None


def test_old_driver_without_compute_cap(tmp_path: Path) -> None:
    outputs = {("nvidia-smi", *SMI_QUERY_OLD): "Tesla T4, 15360, 470.82.01\n\n"}  # the compute_cap query fails
    env = collect_environment(root=tmp_path, run=_fake_run(outputs, []))
    assert env["gpu"] == [
        {"name": "Tesla T4", "memory_mb": 15360, "driver": "470.82.01", "compute_capability": None, "integrated": None}
    ]


@pytest.mark.parametrize("run", [lambda cmd: None, lambda cmd: "", lambda cmd: "garbage, \x00", lambda cmd: 1 / 0])
def test_failing_commands_give_absent_fields(tmp_path: Path, run: Callable[[list[str]], str | None]) -> None:
    env = collect_environment(root=tmp_path, run=run)
    json.dumps(env)
    assert env["gpu"] == [] and env["cuda_version"] is None and env["jetson"] is None


def test_env_vars_only_those_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in environment.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert collect_environment(root=tmp_path, run=lambda cmd: None)["env"] == {"OMP_NUM_THREADS": "4"}


def test_run_command_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_command([sys.executable, "-c", "print('hi')"]) == "hi\n"
    assert run_command(["edgecv-no-such-command-xyz", "--version"]) is None
    assert run_command([sys.executable, "-c", "raise SystemExit(3)"]) is None
    assert run_command([]) is None
    monkeypatch.setattr(environment, "_TIMEOUT_S", 0.2)
    assert run_command([sys.executable, "-c", "import time; time.sleep(5)"]) is None


def test_format_jetson(jetson_root: Path) -> None:
    lines = format_environment(collect_environment(root=jetson_root, run=_fake_run(JETSON_OUTPUTS, [])))
    assert 3 <= len(lines) <= 6
    assert lines[1].startswith("CPU: ARM Cortex-A78AE (") and lines[1].endswith(", governor schedutil), 61.4 GB")
    assert lines[2] == "GPU: NVIDIA Jetson AGX Orin Developer Kit"
    assert "Jetson: AGX Orin Developer Kit, L4T 36.3.0, JetPack 6.0, power mode MAXN (0), jetson_clocks on" in lines
    assert any(line.startswith("onnxruntime ") and "CPUExecutionProvider" in line for line in lines)


def test_format_dgpu_and_no_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in environment.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    outputs = {
        ("nvidia-smi", *SMI_QUERY): "NVIDIA H100 80GB HBM3, 81559, 550.54.15, 9.0\n" * 2,
        ("nvidia-smi",): SMI_HEADER,
    }
    env = collect_environment(root=tmp_path, run=_fake_run(outputs, []))
    env["versions"]["tensorrt"] = "10.3.0"
    lines = format_environment(env)
    assert 3 <= len(lines) <= 6 and not any(line.startswith(("Jetson", "Env")) for line in lines)
    assert "GPU: 2x NVIDIA H100 80GB HBM3 (81559 MB, driver 550.54.15, sm 9.0), CUDA 12.4, TensorRT 10.3.0" in lines
    assert lines[1].startswith("CPU: unknown (")

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    lines = format_environment(collect_environment(root=tmp_path, run=lambda cmd: None))
    assert "GPU: none" in lines and lines[-1] == "Env: OMP_NUM_THREADS=2"
    assert format_environment({})[2] == "GPU: none"  # tolerates a partial (older) record
