"""Helpers of the reliability suite: the CLI in a subprocess, one-line checks, file fingerprints, small mounts.

Every case runs the real ``edgecv`` entry point in its own process, so exit codes,
signals, a killed process and blocked imports behave as they do for a user.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[2]
# Optional modules, as the import names a user may lack (sys.modules[name] = None blocks one)
EXTRAS = ("cv2", "torch", "torchvision", "onnx", "onnxslim", "onnxscript", "torch_pruning", "pycocotools", "matplotlib", "tensorrt", "cuda", "numba")

_LAUNCH = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None
sys.argv = ["edgecv", *{argv!r}]
from edgecv.cli import main
main()
"""


@dataclass
class Outcome:
    rc: int
    out: str

    @property
    def errors(self) -> list[str]:
        return [line for line in self.out.splitlines() if line.startswith("error:")]

    def one_line_error(self) -> str:
        """The single ``error:`` line (with at most one ``fix:`` line), asserting there is no traceback."""
        assert "Traceback" not in self.out, self.out
        assert "internal error" not in self.out, self.out
        assert len(self.errors) == 1, f"expected one error line, got:\n{self.out}"
        fixes = [line for line in self.out.splitlines() if line.strip().startswith("fix:")]
        assert len(fixes) <= 1, self.out
        return self.errors[0]


def command(argv: Sequence[str], blocked: Sequence[str] = ()) -> list[str]:
    return [sys.executable, "-c", _LAUNCH.format(blocked=list(blocked), argv=[str(a) for a in argv])]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("EDGECV_MODELS", None)
    env["COLUMNS"] = "200"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_cli(argv: Sequence[str], *, cwd: Path, blocked: Sequence[str] = (), timeout: float = 240) -> Outcome:
    """Run ``edgecv ARGV`` to the end; stdout and stderr together."""
    proc = subprocess.run(
        command(argv, blocked), cwd=cwd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )
    return Outcome(proc.returncode, proc.stdout)


def start_cli(argv: Sequence[str], *, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(command(argv), cwd=cwd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_lines(path: Path, lines: int, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    """Wait until ``path`` has ``lines`` complete lines (the run is mid-write), or fail if the process ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= lines:
            return
        if proc.poll() is not None:
            raise AssertionError(f"edgecv ended early ({proc.returncode}):\n{proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"{path} did not reach {lines} lines in {timeout} s")


def interrupt(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 60) -> Outcome:
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=timeout)
    return Outcome(proc.returncode, out)


def fingerprint(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (hidden ones included)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def jsonl_lines(path: Path) -> list[dict]:
    """Every line parses (a partial last line would fail here)."""
    text = path.read_text()
    assert text == "" or text.endswith("\n"), f"{path} ends in a partial line"
    return [json.loads(line) for line in text.splitlines()]


def decodable_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.isOpened():
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    cap.release()
    return n


def claimed_frames(out: str) -> int | None:
    """Frames the error says were saved (``all N frames are saved``)."""
    match = re.search(r"all (\d+) frames are saved", out)
    return int(match.group(1)) if match else None


@contextlib.contextmanager
def tmpfs(where: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """A small tmpfs at ``where`` (a real full disk / read-only file system); skips the test where mounting is not allowed."""
    import pytest

    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'mount failed'}); the injected-ENOSPC tests cover this")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(folder: Path, leave_bytes: int) -> None:
    """Fill ``folder``'s file system until about ``leave_bytes`` are free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(folder / "filler.bin", "wb") as f:
        try:
            f.write(b"\0" * max(0, free - leave_bytes))
        except OSError:
            pass
