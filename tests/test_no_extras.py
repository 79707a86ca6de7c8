"""The runtime path must import and run without torch, onnx, TensorRT or CUDA installed."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import edgecv

BLOCKED = ["torch", "torchvision", "onnx", "onnxslim", "onnxscript", "torch_pruning", "tensorrt", "cuda", "pycuda", "pycocotools", "numba", "tritonclient", "prometheus_client"]
# the numba.cuda kernels themselves: imported only by the GPU path (edgecv.cuda.preprocess imports them lazily)
NEEDS_NUMBA = ["edgecv.cuda._kernels"]

SCRIPT = r"""
import sys, importlib, pkgutil
for name in {blocked!r}:
    sys.modules[name] = None          # `import name` now raises ImportError
import edgecv
failed = []
for mod in pkgutil.walk_packages(edgecv.__path__, "edgecv."):
    if mod.name in {exempt!r}:
        continue
    try:
        importlib.import_module(mod.name)
    except Exception as exc:
        failed.append(f"{{mod.name}}: {{exc!r}}")
print("\n".join(failed))
sys.exit(1 if failed else 0)
"""


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


def test_every_module_imports_without_heavy_extras() -> None:
    result = _run(SCRIPT.format(blocked=BLOCKED, exempt=NEEDS_NUMBA))
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(list(pkgutil.walk_packages(edgecv.__path__, "edgecv."))) > 20


CLI = r"""
import sys
for name in {blocked!r}:
    sys.modules[name] = None
sys.argv = ["edgecv", *sys.argv[1:]]
from edgecv.cli import main
main()
"""


def test_every_command_help_works_without_extras() -> None:
    from edgecv.cli import app

    commands = [c.name or c.callback.__name__ for c in app.registered_commands] + [g.name for g in app.registered_groups]
    assert {"export", "run", "eval", "info"} <= set(commands)
    for command in commands:
        result = _run(CLI.format(blocked=BLOCKED), command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage" in result.stdout


def test_missing_extra_is_one_line_naming_the_install_command(tmp_path: Path) -> None:
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"x")
    result = _run(CLI.format(blocked=BLOCKED), "export", str(ckpt))
    assert result.returncode == 3, result.stderr
    assert "torch is not importable" in result.stderr
    assert "pip install 'edgecv[export]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_runtime_works_without_extras(det_onnx: Path) -> None:
    code = (
        f"import sys\nfor n in {BLOCKED!r}: sys.modules[n] = None\n"
        "import numpy as np, edgecv\n"
        f"m = edgecv.load({str(det_onnx)!r})\n"
        "print(len(m(np.zeros((240, 320, 3), np.uint8))))\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
