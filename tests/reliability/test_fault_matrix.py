"""The fault matrix: every fault a robot in the field meets, against the real CLI in a subprocess.

Each case asserts the exit code (edgecv.errors.EXIT_CODES), one ``error:`` line without a
traceback, and that no existing good output was damaged (a fingerprint of the folder is
taken before the run); cases that write add their own checks of what they wrote.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from faults import (
    Outcome,
    claimed_frames,
    decodable_frames,
    fill,
    fingerprint,
    interrupt,
    jsonl_lines,
    run_cli,
    start_cli,
    tmpfs,
    wait_for_lines,
)

from edgecv.errors import EXIT_CODES

# the outputs of an earlier good run, named again by a run that must fail without touching them
GOOD_OUTPUTS = ("--jsonl", "good.jsonl", "--save", "good.avi", "--stats-json", "good.json")
Runner = Callable[[Path, "Case"], Outcome]


def plain(world: Path, case: Case) -> Outcome:
    return run_cli(case.argv, cwd=world, blocked=case.blocked)


@dataclass(frozen=True)
class Case:
    id: str
    argv: Sequence[str]
    rc: int
    says: str = ""  # text the output must contain (in the error line when rc is an error)
    blocked: Sequence[str] = ()  # imports blocked (a missing extra)
    changed: Sequence[str] = ()  # files the case may (re)write
    runner: Runner = plain
    check: Callable[[Path, Outcome], None] | None = None
    marks: Sequence[pytest.MarkDecorator] = field(default_factory=tuple)


# ------------------------------------------------------------------ scenario runners and checks
def _signal_mid_write(sig: int) -> Runner:
    def runner(world: Path, case: Case) -> Outcome:
        proc = start_cli(case.argv, cwd=world)
        wait_for_lines(world / "rec.jsonl", 5, proc)
        return interrupt(proc, sig)

    return runner


def _check_recording(world: Path, outcome: Outcome) -> None:
    """Stopped by a signal: the video is finalized with the frames the JSONL holds, every JSONL line parses."""
    lines = jsonl_lines(world / "rec.jsonl")
    assert len(lines) >= 5
    video = decodable_frames(world / "rec.avi")
    assert video >= len(lines) - 1 and video <= len(lines) + 1, (video, len(lines))  # the frame in flight may differ
    assert "interrupted" in outcome.out or "received" in outcome.out


def _sigkill_then_rerun(world: Path, case: Case) -> Outcome:
    proc = start_cli(case.argv, cwd=world)
    wait_for_lines(world / "rec.jsonl", 5, proc)
    proc.kill()
    proc.communicate(timeout=30)
    stale = [p.name for p in world.iterdir() if ".edgecv-tmp-" in p.name]
    assert stale and all(p.startswith(".rec.avi.edgecv-tmp-") for p in stale), stale  # a killed run leaves a named temp
    return run_cli(["run", "-s", "clip.avi", "--save", "rec.avi", "--max-frames", "3"], cwd=world)


def _check_rerun_cleaned(world: Path, outcome: Outcome) -> None:
    assert not [p for p in world.iterdir() if ".edgecv-tmp-" in p.name]
    assert "left by an edgecv run that was killed" in outcome.out
    assert decodable_frames(world / "rec.avi") == 3


def _on_tmpfs(size: str, leave: int | None = None, read_only: bool = False, seed: Sequence[str] = ()) -> Runner:
    """Run with a small tmpfs mounted at ./disk (holding copies of ``seed`` files, then filled to ``leave`` bytes)."""

    def runner(world: Path, case: Case) -> Outcome:
        disk = world / "disk"
        if read_only:
            with tmpfs(disk, size, read_only=True):
                return run_cli(case.argv, cwd=world, blocked=case.blocked)
        with tmpfs(disk, size):
            for name in seed:
                (disk / name).write_bytes((world / name).read_bytes())
            before = fingerprint(disk)
            if leave is not None:
                fill(disk, leave)
            outcome = run_cli(case.argv, cwd=world, blocked=case.blocked)
            after = fingerprint(disk)
            for name, digest in before.items():
                assert after.get(name) == digest, f"{name} on the full disk was damaged"
            assert not [p for p in disk.iterdir() if ".edgecv-tmp-" in p.name], list(disk.iterdir())
            outcome.disk = {p.name: p.read_bytes() for p in disk.iterdir() if p.name != "filler.bin"}  # type: ignore[attr-defined]
            if (disk / "full.avi").exists() or (disk / "full.partial.avi").exists():
                outcome.frames = decodable_frames(disk / "full.avi") if (disk / "full.avi").exists() else -1  # type: ignore[attr-defined]
            return outcome

    return runner


def _check_full_disk_video(world: Path, outcome: Outcome) -> None:
    assert "wrote" not in outcome.out
    claimed = claimed_frames(outcome.out)
    if claimed is not None:  # finalized under the requested name with every frame it claims
        assert outcome.frames == claimed and claimed > 0  # type: ignore[attr-defined]
    else:
        assert "partial" in outcome.out or "no playable frame" in outcome.out or "MB free" in outcome.out, outcome.out


def _check_full_disk_jsonl(world: Path, outcome: Outcome) -> None:
    data = outcome.disk.get("full.jsonl", b"").decode()  # type: ignore[attr-defined]
    assert data == "" or data.endswith("\n")
    assert "complete lines" in outcome.out


class _Server:
    """ffmpeg serving a clip over TCP in real time, to kill and restart (a camera that drops out and returns)."""

    def __init__(self, video: Path) -> None:
        import imageio_ffmpeg

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "quiet", "-nostdin", "-re", "-stream_loop", "-1",
            "-i", str(video), "-c:v", "mjpeg", "-q:v", "5", "-f", "matroska", f"tcp://127.0.0.1:{self.port}?listen=1",
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL)
        time.sleep(0.5)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def _stream_drops(returns: bool) -> Runner:
    def runner(world: Path, case: Case) -> Outcome:
        pytest.importorskip("imageio_ffmpeg")
        server = _Server(world / "long.avi")
        server.start()
        argv = [a.replace("PORT", str(server.port)) for a in case.argv]
        try:
            proc = start_cli(argv, cwd=world)
            wait_for_lines(world / "live.jsonl", 10, proc)
            server.kill()
            if returns:
                time.sleep(1.5)
                server.start()
            out, _ = proc.communicate(timeout=90)
            return Outcome(proc.returncode, out)
        finally:
            server.kill()

    return runner


def _check_reconnected(world: Path, outcome: Outcome) -> None:
    stats = __import__("json").loads((world / "live.json").read_text())
    assert stats["reconnects"] >= 1 and stats["frames"] == 60, stats
    assert len(jsonl_lines(world / "live.jsonl")) == 60


def _sigterm_after(seconds: float) -> Runner:
    def runner(world: Path, case: Case) -> Outcome:
        proc = start_cli(case.argv, cwd=world)
        time.sleep(seconds)
        return interrupt(proc, signal.SIGTERM)

    return runner


def _check_no_ffmpeg_noise(world: Path, outcome: Outcome) -> None:
    assert " @ 0x" not in outcome.out and "[ WARN" not in outcome.out, outcome.out  # FFmpeg's / OpenCV's own log lines


def _check_failed_export_kept(world: Path, outcome: Outcome) -> None:
    assert (world / "good.failed.onnx").exists()  # the rejected file, for inspection, under a clear name
    assert "good.failed.onnx" in outcome.out


CASES = [
    # -- models: missing, corrupt, truncated, empty, foreign; the outputs of an earlier run stay as they were
    Case("model-missing", ["run", "nope.onnx", "-s", "clip.avi", *GOOD_OUTPUTS], 4, "not found"),
    Case("model-corrupt", ["run", "corrupt.onnx", "-s", "clip.avi", *GOOD_OUTPUTS], 4, "corrupt.onnx"),
    Case("model-truncated", ["run", "truncated.onnx", "-s", "clip.avi", *GOOD_OUTPUTS], 4, "truncated.onnx"),
    Case("model-empty", ["run", "empty.onnx", "-s", "clip.avi", *GOOD_OUTPUTS], 4, "empty.onnx"),
    Case("model-foreign", ["run", "foreign.onnx", "-s", "clip.avi", *GOOD_OUTPUTS], 4, "layout edgecv knows"),
    Case("info-corrupt", ["info", "corrupt.onnx"], 4, "corrupt.onnx"),
    Case("bench-missing", ["bench", "nope.onnx", "-n", "2"], 4, "not found"),
    Case("export-foreign-over-good", ["export", "foreign.onnx", "-o", "good.onnx"], 4, "layout edgecv knows"),
    Case("convert-missing", ["convert", "nope.onnx", "--fp16", "-o", "good.onnx"], 4, "not found"),
    Case("convert-corrupt-over-good", ["convert", "corrupt.onnx", "--fp16", "-o", "good.onnx"], 4, "corrupt.onnx"),
    Case("calibrate-missing", ["calibrate", "nope.onnx", "clip.avi"], 4, "not found"),
    Case("build-engine-missing", ["build-engine", "nope.onnx"], 4, "not found"),
    # -- missing extras: one line naming the install command (and JetPack's way for OpenCV)
    Case("extra-opencv", ["run", "-s", "clip.avi", *GOOD_OUTPUTS], 3, "pip install 'edgecv[opencv]'", blocked=["cv2"]),
    Case("extra-opencv-jetpack", ["bench", "good.onnx", "-n", "2"], 3, "python3-opencv", blocked=["cv2"]),
    Case("extra-onnx", ["convert", "good.onnx", "--fp16", "-o", "good.onnx"], 3, "edgecv[export]", blocked=["onnx"]),
    Case("extra-torch", ["export", "shapes-det", "-o", "good.onnx"], 3, "edgecv[export]", blocked=["torch"]),
    Case("extra-matplotlib", ["bench", "good.onnx", "-n", "2", "--plot", "p.png"], 3, "edgecv[plot]", blocked=["matplotlib"]),
    Case("extra-tensorrt", ["build-engine", "good.onnx", "-o", "good.engine"], 3, "tensorrt"),
    # -- sources
    Case("video-unopenable", ["run", "-s", "garbage.mp4", *GOOD_OUTPUTS], 1, "garbage.mp4"),
    Case("video-missing", ["run", "-s", "nope.mp4", *GOOD_OUTPUTS], 1, "not found"),
    Case("video-truncated", ["run", "-s", "cut.avi", "--jsonl", "cut.jsonl"], 0, "ended after", changed=["cut.jsonl"], check=_check_no_ffmpeg_noise),
    Case("video-truncated-strict", ["run", "-s", "cut.avi", "--strict", "--jsonl", "cut.jsonl"], 1, "of 60 frames", changed=["cut.jsonl"]),
    Case("camera-absent", ["run", "--camera", "7", *GOOD_OUTPUTS], 1, "camera 7"),
    Case(
        "stream-dies-and-returns",
        ["run", "-s", "tcp://127.0.0.1:PORT", "--max-frames", "60", "--jsonl", "live.jsonl", "--stats-json", "live.json", "--open-timeout", "2"],
        0, changed=["live.jsonl", "live.json"], runner=_stream_drops(True), check=_check_reconnected, marks=[pytest.mark.slow],
    ),  # fmt: skip
    Case(
        "stream-dies-for-good",
        ["run", "-s", "tcp://127.0.0.1:PORT", "--jsonl", "live.jsonl", "--reconnect-timeout", "3", "--open-timeout", "1"],
        1, "did not come back", changed=["live.jsonl"], runner=_stream_drops(False), marks=[pytest.mark.slow],
    ),  # fmt: skip
    # -- outputs that cannot be written: refused before any work (exit 2)
    Case("stats-json-missing-folder", ["run", "-s", "clip.avi", "--jsonl", "good.jsonl", "--stats-json", "no/s.json"], 2, "does not exist"),
    Case("jsonl-is-a-folder", ["run", "-s", "clip.avi", "--jsonl", "."], 2, "folder"),
    Case("save-unknown-suffix", ["run", "-s", "clip.avi", "--save", "out.xyz", "--jsonl", "good.jsonl"], 2, "unknown suffix"),
    Case("same-file-twice", ["run", "-s", "clip.avi", "--jsonl", "x.json", "--stats-json", "x.json"], 2, "different files"),
    Case("export-output-missing-folder", ["convert", "good.onnx", "--fp16", "-o", "no/x.onnx"], 2, "does not exist"),
    Case("read-only-save", ["run", "-s", "clip.avi", "--save", "disk/out.avi", "--jsonl", "good.jsonl"], 2, "Read-only", runner=_on_tmpfs("64k", read_only=True)),
    Case("read-only-convert", ["convert", "good.onnx", "--fp16", "-o", "disk/x.onnx"], 2, "Read-only", runner=_on_tmpfs("64k", read_only=True)),
    # -- a full disk (a real small tmpfs): one line, exit 1, the recording finalized or named partial, old files intact
    Case(
        "full-disk-video", ["run", "-s", "long.avi", "--save", "disk/full.avi", "--max-frames", "400"], 1, "disk",
        runner=_on_tmpfs("2m"), check=_check_full_disk_video,
    ),  # fmt: skip
    Case(
        "full-disk-jsonl", ["run", "-s", "long.avi", "--jsonl", "disk/full.jsonl"], 1, "No space left",
        runner=_on_tmpfs("1m", leave=20_000), check=_check_full_disk_jsonl,
    ),  # fmt: skip
    Case(
        "full-disk-stats-json", ["run", "-s", "clip.avi", "--max-frames", "3", "--stats-json", "disk/good.json"], 1, "good.json",
        runner=_on_tmpfs("1m", leave=0, seed=["good.json"]),
    ),  # fmt: skip
    Case(
        "full-disk-convert-over-good", ["convert", "disk/good.onnx", "--fp16", "-o", "disk/good.onnx"], 1, "No space left",
        runner=_on_tmpfs("4m", leave=100_000, seed=["good.onnx"]),
    ),  # fmt: skip
    # -- signals mid-write: outputs finalized, exit 130
    Case(
        "sigterm-mid-write", ["run", "-s", "long.avi", "--realtime", "--save", "rec.avi", "--jsonl", "rec.jsonl"], 130,
        changed=["rec.avi", "rec.jsonl"], runner=_signal_mid_write(signal.SIGTERM), check=_check_recording,
    ),  # fmt: skip
    Case(
        "sigint-mid-write", ["run", "-s", "long.avi", "--realtime", "--save", "rec.avi", "--jsonl", "rec.jsonl"], 130,
        changed=["rec.avi", "rec.jsonl"], runner=_signal_mid_write(signal.SIGINT), check=_check_recording,
    ),  # fmt: skip
    Case(
        "sigkill-then-next-run-cleans", ["run", "-s", "long.avi", "--realtime", "--save", "rec.avi", "--jsonl", "rec.jsonl"], 0,
        changed=["rec.avi", "rec.jsonl"], runner=_sigkill_then_rerun, check=_check_rerun_cleaned,
    ),  # fmt: skip
    Case(
        "sigterm-any-command", ["bench", "good.onnx", "-n", "1000000", "--json", "good.json"], 130, "interrupted",
        runner=_sigterm_after(6.0),
    ),  # fmt: skip
    # -- a failed export never replaces a good model
    Case(
        "export-parity-fails-over-good", ["export", "shapes-det", "--atol", "1e-9", "--tolerance", "1.0", "-o", "good.onnx"], 1, "disagree",
        changed=["good.failed.onnx"], check=_check_failed_export_kept, marks=[pytest.mark.slow],
    ),  # fmt: skip
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_fault(world: Path, case: Case) -> None:
    before = fingerprint(world)
    outcome = case.runner(world, case)
    assert outcome.rc == case.rc, f"{case.id}: exit {outcome.rc} ({EXIT_CODES.get(outcome.rc)}), expected {case.rc}:\n{outcome.out}"
    assert "Traceback" not in outcome.out, outcome.out
    if case.rc not in (0, 130):
        line = outcome.one_line_error()
        if case.says:
            assert case.says in line or case.says in outcome.out, f"{case.says!r} not in {line!r}"
    elif case.says:
        assert case.says in outcome.out, outcome.out
    after = fingerprint(world)
    for name, digest in before.items():
        if name not in case.changed:
            assert after.get(name) == digest, f"{case.id}: {name} was changed or removed"
    if case.id != "sigkill-then-next-run-cleans":
        assert not [p for p in os.listdir(world) if ".edgecv-tmp-" in p], os.listdir(world)
    if case.check is not None:
        case.check(world, outcome)
