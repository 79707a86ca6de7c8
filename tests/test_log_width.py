"""CLI tables written to a file or a pipe are not cut at 80 columns."""

from __future__ import annotations

import io

import pytest
from rich.table import Table

from edgecv.log import LOG_WIDTH, _console


def test_a_console_that_is_not_a_terminal_is_wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    console = _console()
    assert not console.is_terminal and console.width == LOG_WIDTH
    console.file = io.StringIO()
    table = Table(title="run loop vs bare inference")
    for col in ("model", "source", "frames", "threads", "bare FPS", "loop FPS", "ratio"):
        table.add_column(col, no_wrap=True)
    table.add_row("yolov8n-320.edgecv.onnx", "/data/videos/pedestrians-768x576.mp4", "300", "-", "59.9", "57.1", "0.95")
    console.print(table)
    text = console.file.getvalue()
    assert "pedestrians-768x576.mp4" in text and "0.95" in text  # nothing cut or wrapped away
    assert max(len(line) for line in text.splitlines()) > 80


def test_columns_still_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert _console().width == 100
