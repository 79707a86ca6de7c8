"""Mutation check of the GPU path's tests: remove one synchronization, or swap a host and a device pointer,
in ``edgecv/engine/tensorrt.py`` or ``edgecv/cuda/preprocess.py``, and show that a test on the CUDA
simulator fails.

    .venv/bin/python scripts/mutation_check.py [--only NAME] [--markdown]

Each mutation is applied to a copy of the package in a temporary folder (the working tree is never
touched); the simulator tests run against the copy (``PYTHONPATH``), and the mutation is "caught"
when they fail. The unmutated copy must pass first. Exits 1 when a mutation survives.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/engine/test_tensorrt_backend.py", "tests/cuda/test_gpu_preprocessor_sim.py", "tests/quant/test_trt_calibrator.py"]
TRT, PRE = "edgecv/engine/tensorrt.py", "edgecv/cuda/preprocess.py"

# (name, file, kind, text, replacement): each text must occur exactly once
MUTATIONS = [
    ("no sync after the output copies", TRT, "sync",
     '            results[spec.name] = buf.host_array(shape, spec.dtype)\n        check_cuda(cudart, cudart.cudaStreamSynchronize(st.stream), "cudaStreamSynchronize")\n',
     "            results[spec.name] = buf.host_array(shape, spec.dtype)\n"),
    ("no sync after the detection-row copies", TRT, "sync",
     '            results[spec.name] = buf.host_array((batch, n, *rest), spec.dtype)\n        check_cuda(cudart, cudart.cudaStreamSynchronize(st.stream), "cudaStreamSynchronize")\n',
     "            results[spec.name] = buf.host_array((batch, n, *rest), spec.dtype)\n"),
    ("no wait for the producer stream's event", TRT, "sync",
     '                check_cuda(self._cudart, self._cudart.cudaStreamWaitEvent(st.stream, st.handoff, 0), "cudaStreamWaitEvent")\n', ""),
    ("no record of the handoff event", TRT, "sync",
     '                check_cuda(self._cudart, self._cudart.cudaEventRecord(st.handoff, int(producer)), "cudaEventRecord")\n', ""),
    ("no start event before the enqueue", TRT, "sync",
     '        check_cuda(cudart, cudart.cudaEventRecord(st.events[0], st.stream), "cudaEventRecord")\n', ""),
    ("no end event after the enqueue", TRT, "sync",
     '        check_cuda(cudart, cudart.cudaEventRecord(st.events[1], st.stream), "cudaEventRecord")\n', ""),
    ("upload: host and device swapped", TRT, "pointer",
     "cudart.cudaMemcpyAsync(buf.device, buf.host, array.nbytes, h2d, st.stream)", "cudart.cudaMemcpyAsync(buf.host, buf.device, array.nbytes, h2d, st.stream)"),
    ("upload: pinned copy skipped (device pointer written by the host)", TRT, "pointer",
     "            buf.host_array(array.shape, array.dtype)[...] = array\n",
     "            (ctypes.c_byte * array.nbytes).from_address(buf.device)[:] = bytes(array)\n"),
    ("input bound to the host buffer", TRT, "pointer",
     "            self._set_address(st, spec.name, tuple(array.shape), buf.device)", "            self._set_address(st, spec.name, tuple(array.shape), buf.host)"),
    ("output bound to the host buffer", TRT, "pointer",
     "            self._bind(st, spec.name, buf.device)\n", "            self._bind(st, spec.name, buf.host)\n"),
    ("download: host and device swapped", TRT, "pointer",
     "cudart.cudaMemcpyAsync(buf.host, buf.device, nbytes, d2h, st.stream)", "cudart.cudaMemcpyAsync(buf.device, buf.host, nbytes, d2h, st.stream)"),
    ("row download: host and device swapped", TRT, "pointer",
     "cudart.cudaMemcpy2DAsync(buf.host, width, buf.device, pitch, width, batch, d2h, st.stream)",
     "cudart.cudaMemcpy2DAsync(buf.device, width, buf.host, pitch, width, batch, d2h, st.stream)"),
    ("results read from the device pointer", TRT, "pointer",
     "        raw = (ctypes.c_byte * (count * np.dtype(dtype).itemsize)).from_address(self.host)",
     "        raw = (ctypes.c_byte * (count * np.dtype(dtype).itemsize)).from_address(self.device)"),
    ("free: cudaFree and cudaFreeHost swapped", TRT, "pointer",
     "            cudart.cudaFree(self.device)\n        if self.host:\n            cudart.cudaFreeHost(self.host)",
     "            cudart.cudaFreeHost(self.device)\n        if self.host:\n            cudart.cudaFree(self.host)"),
    ("preprocess: no wait before reusing the staging buffer", PRE, "sync",
     "            end.synchronize()  # the previous frame's upload and kernel may still read the staging buffer\n",
     "            pass\n"),
    ("preprocess: no wait before reading the GPU time", PRE, "sync",
     "        start, end = self._events\n        end.synchronize()\n        return float(start.elapsed_time(end))",
     "        start, end = self._events\n        return float(start.elapsed_time(end))"),
    ("preprocess: no end event recorded", PRE, "sync",
     "        end.record(self.stream)\n", ""),
    ("preprocess: kernel reads the pinned staging buffer (host) instead of its device copy", PRE, "pointer",
     "        self._frame.copy_to_device(self._staging, stream=self.stream)\n        return self._frame",
     "        self._frame.copy_to_device(self._staging, stream=self.stream)\n        return self._staging"),
]  # fmt: skip


def _copy(dest: Path) -> None:
    for name in ("edgecv", "tests"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "models"):
        (dest / name).symlink_to(ROOT / name)


def _run_tests(tree: Path) -> tuple[bool, str]:
    env = {**os.environ, "PYTHONPATH": str(tree), "EDGECV_MODELS": str(ROOT / "models")}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not gpu", *TESTS]
    run = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=900)
    lines = [line for line in run.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return run.returncode == 0, (lines[0] if lines else run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-300:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="run the mutations whose name contains this")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if not args.only or args.only in m[0]]
    survived = 0
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        _copy(tree)
        import edgecv  # the copy must be what the tests import

        del edgecv
        ok, detail = _run_tests(tree)
        if not ok:
            raise SystemExit(f"the unmutated tests fail; fix them first: {detail}")
        rows = []
        for name, rel, kind, old, new in chosen:
            path = tree / rel
            original = path.read_text()
            if original.count(old) != 1:
                raise SystemExit(f"mutation {name!r}: its text occurs {original.count(old)} times in {rel} (the code changed: update the script)")
            path.write_text(original.replace(old, new))
            start = time.perf_counter()
            try:
                passed, detail = _run_tests(tree)
            finally:
                path.write_text(original)
            survived += passed
            rows.append((name, rel, kind, "SURVIVED" if passed else "caught", detail, time.perf_counter() - start))
            print(f"{'SURVIVED' if passed else 'caught  '} {kind:7} {rel:28} {name}: {detail}", flush=True)
    if args.markdown:
        print("\n| mutation | file | kind | result | first failing test |\n|---|---|---|---|---|")
        for name, rel, kind, result, detail, _ in rows:
            print(f"| {name} | `{rel}` | {kind} | {result} | {detail.replace('|', '/')[:140]} |")
    print(f"{len(rows) - survived}/{len(rows)} mutations caught")
    sys.exit(1 if survived else 0)


if __name__ == "__main__":
    main()
