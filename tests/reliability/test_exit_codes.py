"""One exit-code table for every command (edgecv.errors.EXIT_CODES), enforced here and documented in the README.

For each command: a bad option (2), a missing model file (4), a missing extra (3, in a
subprocess that blocks the import) and, where it is cheap, success (0). Interruption (130)
and the full matrix of faults are in test_fault_matrix.py; a bug (70) is simulated below.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from faults import ROOT, run_cli
from typer.testing import CliRunner

from edgecv import assets
from edgecv.cli import app
from edgecv.errors import EXIT_BUG, EXIT_CODES, EXIT_INTERRUPTED

runner = CliRunner()
DET = str(assets.shipped("shapes-det"))
VIDEO = str(assets.demo_video())

# command -> argv that must exit with each code (None: the code does not apply to that command)
TABLE: dict[str, dict[int, list[str] | None]] = {
    "export": {2: ["export", "shapes-det", "--nms", "bogus"], 4: ["export", "nope.pt"]},
    "prune": {2: ["prune", "shapes-det"], 4: ["prune", "nope.pt", "--ratio", "0.5"]},
    "calibrate": {2: ["calibrate", DET, VIDEO, "--method", "bogus"], 4: ["calibrate", "nope.onnx", VIDEO]},
    "convert": {2: ["convert", DET], 4: ["convert", "nope.onnx", "--fp16"]},
    "build-engine": {2: ["build-engine", DET, "--fp16", "--int8"], 4: ["build-engine", "nope.onnx"]},
    "run": {2: ["run", "--max-frames", "0"], 4: ["run", "nope.onnx"], 1: ["run", "-s", "nope.mp4"]},
    "eval": {2: ["eval", DET], 4: ["eval", "nope.onnx", "--data", "DATA"], 1: ["eval", DET, "--data", VIDEO]},
    "bench": {2: ["bench", DET, "--batch", "x"], 4: ["bench", "nope.onnx"]},
    "info": {2: ["info"], 4: ["info", "nope.onnx"]},
    "shapes": {2: ["shapes", "OUT", "--images", "0"], 4: None},
    "deploy": {2: ["deploy", "triton", DET, "-o", "OUT", "--instances", "0"], 4: ["deploy", "triton", "nope.onnx", "-o", "OUT"]},
    "ros": {2: ["ros", DET, "--conf", "2"], 4: ["ros", "nope.onnx"]},
}
# command -> (argv, blocked imports) that must exit 3 with the install line
MISSING_EXTRA: dict[str, tuple[list[str], list[str]] | None] = {
    "export": (["export", "shapes-det", "-o", "x.onnx"], ["torch"]),
    "prune": (["prune", "shapes-det", "--ratio", "0.5"], ["torch_pruning"]),
    "calibrate": (["calibrate", DET, VIDEO], ["onnx"]),
    "convert": (["convert", DET, "--fp16", "-o", "x.onnx"], ["onnx"]),
    "build-engine": (["build-engine", DET, "-o", "x.engine"], ["tensorrt"]),
    "run": (["run", "--max-frames", "2"], ["cv2"]),
    "eval": (["eval", DET, "--data", "DATA"], ["cv2"]),
    "bench": (["bench", DET, "-n", "2"], ["cv2"]),
    "info": None,  # ONNX Runtime only (an engine's manifest is JSON): works without any extra
    "shapes": (["shapes", "OUT", "--images", "2"], ["cv2"]),
    "deploy": None,  # writes files from the artifact's metadata (ONNX Runtime only); needs no extra
    "ros": (["ros", DET, "--max-frames", "1", "--source", VIDEO], ["rclpy"]),
}


def _commands() -> list[str]:
    commands = [c.name or c.callback.__name__ for c in app.registered_commands]  # type: ignore[union-attr]
    return sorted(commands + [g.name for g in app.registered_groups])  # type: ignore[misc]


def test_every_command_is_in_the_table() -> None:
    assert sorted(TABLE) == _commands() == sorted(MISSING_EXTRA)


def _fill(argv: list[str], tmp_path: Path, data: Path) -> list[str]:
    return [str(data) if a == "DATA" else str(tmp_path / "out") if a == "OUT" else a for a in argv]


@pytest.mark.parametrize(
    ("command", "code"), [(c, code) for c, codes in TABLE.items() for code, argv in codes.items() if argv is not None]
)
def test_exit_code(command: str, code: int, tmp_path: Path, shapes_val: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    argv = _fill(TABLE[command][code] or [], tmp_path, shapes_val)
    result = runner.invoke(app, argv)
    assert result.exit_code == code, f"{argv}: {result.exit_code} ({EXIT_CODES.get(result.exit_code)}), expected {code}\n{result.output}"
    assert "Traceback" not in result.output
    if code != 2 or "Usage" not in result.output:
        assert len([line for line in result.output.splitlines() if line.startswith("error:")]) == 1, result.output


@pytest.mark.parametrize("command", sorted(c for c, v in MISSING_EXTRA.items() if v is not None))
def test_missing_extra_exits_3(command: str, tmp_path: Path, shapes_val: Path) -> None:
    argv, blocked = MISSING_EXTRA[command]  # type: ignore[misc]
    outcome = run_cli(_fill(argv, tmp_path, shapes_val), cwd=tmp_path, blocked=blocked)
    assert outcome.rc == 3, outcome.out
    line = outcome.one_line_error()
    assert "is not importable" in line
    assert "pip install 'edgecv[" in outcome.out or "JetPack" in outcome.out


@pytest.mark.parametrize("command", ["run", "bench", "eval", "export", "shapes", "calibrate"])
def test_missing_opencv_names_pc_and_jetson_installs(command: str, tmp_path: Path, shapes_val: Path) -> None:
    argv = {
        "run": ["run", "--max-frames", "2"], "bench": ["bench", DET, "-n", "2"], "eval": ["eval", DET, "--data", "DATA"],
        "export": ["export", "shapes-det", "-o", "x.onnx"], "shapes": ["shapes", "OUT"], "calibrate": ["calibrate", DET, "DATA"],
    }[command]  # fmt: skip
    outcome = run_cli(_fill(argv, tmp_path, shapes_val), cwd=tmp_path, blocked=["cv2"])
    assert outcome.rc == 3, outcome.out
    assert "cv2 is not importable" in outcome.one_line_error()
    assert "on a PC: pip install 'edgecv[opencv]'" in outcome.out and "python3-opencv" in outcome.out


def test_success_is_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for argv in (["info", DET], ["run", "--max-frames", "2"], ["shapes", str(tmp_path / "s"), "--images", "2"]):
        result = runner.invoke(app, argv)
        assert result.exit_code == 0, result.output


def test_a_bug_is_70_with_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import edgecv.engine.registry

    def broken(path: Path) -> dict:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(edgecv.engine.registry, "describe_model", broken)
    result = runner.invoke(app, ["info", DET])
    assert result.exit_code == EXIT_BUG
    assert "Traceback" in result.output and "internal error" in result.output


def test_interrupted_is_130(monkeypatch: pytest.MonkeyPatch) -> None:
    import edgecv.engine.registry

    def interrupted(path: Path) -> dict:
        raise KeyboardInterrupt

    monkeypatch.setattr(edgecv.engine.registry, "describe_model", interrupted)
    assert runner.invoke(app, ["info", DET]).exit_code == EXIT_INTERRUPTED


def test_readme_documents_the_table() -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Exit codes") :]
    rows = dict(re.findall(r"^\|\s*(\d+)\s*\|\s*(.+?)\s*\|", section, re.M))
    assert {int(k) for k in rows} == set(EXIT_CODES)
