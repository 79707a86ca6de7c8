"""calibration/harvest.py: frames from a video and an image folder into calibration + held-out sets, split by blocks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

SCRIPT = Path(__file__).resolve().parents[2] / "calibration" / "harvest.py"


def _harvest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_video_to_blocks_of_held_out_frames(demo_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "set"
    done = _harvest(str(demo_video), "--out", str(out), "--every", "2", "--num", "40", "--block", "4", "--holdout", "0.25", "--min-change", "0")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    calib, held = sorted((out / "calibration").glob("*.jpg")), sorted((out / "holdout").glob("*.jpg"))
    assert len(calib) == manifest["calibration"] and len(held) == manifest["holdout"] and len(calib) + len(held) <= 40
    assert len(held) >= 0.2 * (len(calib) + len(held))
    indices = [int(p.stem) for p in held]  # whole blocks of 4 consecutive kept frames
    assert len(indices) % 4 == 0 or max(indices) == len(calib) + len(held) - 1
    assert all(i // 4 * 4 + k in indices for i in indices for k in range(4) if i // 4 * 4 + k < len(calib) + len(held))
    assert all(cv2.imread(str(p)) is not None for p in calib[:3] + held[:3])
    assert "edgecv calibrate" in done.stdout


def test_image_folder_and_near_duplicates(tmp_path: Path) -> None:
    src = tmp_path / "frames"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        frame = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(src / f"{i:02d}a.png"), frame)
        cv2.imwrite(str(src / f"{i:02d}b.png"), frame)  # the robot stood still: a copy
    out = tmp_path / "set"
    done = _harvest(str(src), "--out", str(out), "--num", "100", "--block", "2", "--holdout", "4")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skipped_similar"] == 12 and manifest["calibration"] + manifest["holdout"] == 12 and manifest["holdout"] == 4
    bad = _harvest(str(tmp_path / "missing.mp4"), "--out", str(out))
    assert bad.returncode != 0 and "cannot open" in bad.stderr
