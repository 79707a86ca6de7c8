"""`edgecv bench --sources N`: the loop on N sources, batched vs one call per frame, on the same frames."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgecv.bench.multisource import FrameListSource, multisource_benchmark
from edgecv.cli import app
from edgecv.errors import ConfigError

runner = CliRunner()


def test_multisource_benchmark_batches_and_compares(det_onnx: Path) -> None:
    frames = [np.full((120, 160, 3), i * 20, np.uint8) for i in range(6)]
    ms = multisource_benchmark(det_onnx, frames, sources=3, repeats=1, threads=1)
    assert ms.sequential_fps > 0 and ms.batched_fps > 0 and ms.ratio == pytest.approx(ms.batched_fps / ms.sequential_fps)
    assert ms.mean_batch > 1.5  # memory sources always have a frame ready: the batches fill up
    assert ms.to_dict()["sources"] == 3
    with pytest.raises(ConfigError, match=">= 2"):
        multisource_benchmark(det_onnx, frames, sources=1)


def test_frame_list_source_replays_every_frame() -> None:
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(5)]
    with FrameListSource(frames) as src:
        assert [int(f.image[0, 0, 0]) for f in src] == [0, 1, 2, 3, 4]


def test_bench_cli_prints_the_batching_ratio(det_onnx: Path, demo_video: Path) -> None:
    result = runner.invoke(app, ["bench", str(det_onnx), "-n", "3", "--warmup", "1", "--source", str(demo_video), "--sources", "2", "--repeats", "1"])
    assert result.exit_code == 0, result.output
    assert re.search(r"2 sources x \d+ frames.*ratio \d+\.\d\d", " ".join(result.output.split()))
    bad = runner.invoke(app, ["bench", str(det_onnx), "--sources", "1"])
    assert bad.exit_code == 2 and "--sources must be >= 2" in bad.output
