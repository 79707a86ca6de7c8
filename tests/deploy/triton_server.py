"""A real Triton Inference Server on 127.0.0.1 for the smoke tests, from the ``nvidia-pytriton`` wheel.

PyTriton bundles ``tritonserver`` 2.51 with the Python backend only (no ONNX Runtime or TensorRT
backend), so the served models are edgecv's Python-backend ones (``deploy triton --backend python``).
The server needs a Python with numpy < 2 (its Python-backend stub was built against numpy 1.x:
a round trip failed under numpy 2), so it lives in its own venv, ``.venv-triton`` (CI makes it;
``scripts/setup_triton_server.sh``). Its stub for the venv's Python version is put in place the way
PyTriton does it (``pytriton/triton.py``: copy ``python_backend_stubs/<ver>/triton_python_backend_stub``
into ``backends/python``), and edgecv is put on the stub's ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("EDGECV_TRITON_VENV", ROOT / ".venv-triton"))


def site_packages(venv: Path = VENV) -> Path | None:
    found = sorted(venv.glob("lib/python3*/site-packages/pytriton/tritonserver/bin/tritonserver"))
    return found[0].parents[3] if found else None


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies (Linux), so no server outlives its test."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TritonServer:
    """``with TritonServer(repo, tmp) as server: server.http_url, server.grpc_url`` (killed on exit)."""

    def __init__(self, repo: Path, work: Path, venv: Path = VENV, ready_timeout_s: float = 120.0) -> None:
        sp = site_packages(venv)
        if sp is None:
            raise FileNotFoundError(f"no pytriton in {venv}")
        version = next(p.name for p in (venv / "lib").iterdir() if p.name.startswith("python3"))[len("python") :]
        server = work / "tritonserver"
        shutil.copytree(sp / "pytriton" / "tritonserver", server, ignore=shutil.ignore_patterns("python_backend_stubs"))
        shutil.copy(sp / "pytriton" / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub", server / "backends" / "python")
        self.http_port, self.grpc_port = _free_port(), _free_port()
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = f"{sp / 'nvidia_pytriton.libs'}:{env.get('LD_LIBRARY_PATH', '')}"
        env["PYTHONPATH"] = f"{sp}:{ROOT}"
        env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
        self.log_path = work / "tritonserver.log"
        self.command = [
            str(server / "bin" / "tritonserver"), "--model-repository", str(repo), "--backend-directory", str(server / "backends"),
            "--http-address", "127.0.0.1", "--http-port", str(self.http_port),
            "--grpc-address", "127.0.0.1", "--grpc-port", str(self.grpc_port),
            "--allow-metrics", "false", "--exit-on-error", "true", "--log-verbose", "0",
        ]  # fmt: skip
        self.env, self.cwd, self.ready_timeout_s = env, work, ready_timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> TritonServer:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
            )
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:  # bounded: gives up after ready_timeout_s
            if self.process.poll() is not None:
                raise RuntimeError(f"tritonserver exited ({self.process.returncode}):\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=2) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        self.__exit__()
        raise TimeoutError(f"tritonserver not ready after {self.ready_timeout_s} s:\n{self.log()[-3000:]}")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


if __name__ == "__main__":  # manual use: python tests/deploy/triton_server.py REPO
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, TritonServer(Path(sys.argv[1]), Path(tmp)) as s:
        print(s.http_url, s.grpc_url, flush=True)
        time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 600)
