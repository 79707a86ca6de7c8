"""`edgecv run --serve / --metrics-only` as a person uses it: a real process, a real browser, a real scrape."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from servekit import get, wait_for
from typer.testing import CliRunner

from edgecv.cli import app
from edgecv.vision.draw import PALETTE

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--serve-token", "abc"], "need --serve or --metrics-only"),
        (["--serve-fps", "5"], "need --serve or --metrics-only"),
        (["--serve", "8080", "--metrics-only", "9100"], "exclusive"),
        (["--metrics-only", "9100", "--serve-fps", "5"], "applies to the video preview"),
        (["--serve", "web"], "port must be a number"),
        (["--serve", "8080", "--serve-fps", "0"], "preview fps"),
        (["--serve", "8080", "--serve-token", "a b"], "without spaces"),
    ],
)
def test_bad_serve_options_exit_2_with_a_hint(args: list[str], match: str) -> None:
    result = runner.invoke(app, ["run", *args, "--max-frames", "1"])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and match in result.output


class Run:
    """``edgecv run`` in a subprocess; ``url`` is read from its 'serving … on URL' line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from edgecv.cli import main; sys.argv[0] = 'edgecv'; main()", "-q", "run", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200", **(env or {})},
        )
        self.lines: list[str] = []
        self.url: str | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            m = re.search(r"serving .* on (http://\S+/)", line)
            if m:
                self.url = m.group(1)
                self._ready.set()
        self._ready.set()

    def wait_url(self, timeout: float = 60) -> str:
        self._ready.wait(timeout)
        assert self.url, "edgecv run never said where it serves:\n" + "".join(self.lines)
        return self.url

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


@pytest.fixture
def run_factory() -> Iterator[type[Run]]:
    runs: list[Run] = []

    class Tracked(Run):
        def __init__(self, *args: str, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            runs.append(self)

    yield Tracked
    for r in runs:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait(10)


def _status(url: str, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, _, body = get(url, "/api/status", headers)
    assert status == 200, body
    return json.loads(body)


def _frames(url: str, token: str | None = None) -> int:
    sources = _status(url, token)["sources"]
    return sources[0]["frames"] if sources else 0


def test_metrics_only_is_scraped_and_parsed(run_factory: type[Run]) -> None:
    """`run --metrics-only` on the demo video; /metrics parsed by prometheus_client's own parser, twice."""
    parser = pytest.importorskip("prometheus_client.parser")
    run = run_factory("--metrics-only", "127.0.0.1:0", "--realtime")
    url = run.wait_url()
    assert wait_for(lambda: _frames(url) > 5, timeout=60)
    scrapes = []
    for _ in range(2):
        status, headers, body = get(url, "/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain")
        scrapes.append({f.name: f for f in parser.text_string_to_metric_families(body.decode())})
        time.sleep(1.0)
    frames = [next(s.value for s in fams["edgecv_frames"].samples if s.name == "edgecv_frames_total") for fams in scrapes]
    assert 0 < frames[0] < frames[1]  # a counter that counts
    fams = scrapes[1]
    info = fams["edgecv_model_info"].samples[0].labels
    assert info == {"source": "cam0", "model": "shapes-det.onnx", "task": "detect", "precision": "fp32", "backend": "onnxruntime", "input_size": "256x256"}
    stages = {s.labels["stage"] for s in fams["edgecv_stage_latency_seconds"].samples}
    assert stages == {"capture", "pre", "infer", "post", "sink", "total"}
    age = [s for s in fams["edgecv_frame_age_seconds"].samples if s.name == "edgecv_frame_age_seconds_count"]
    assert age and age[0].value > 0  # --realtime makes the file a live source: its frames have an age
    assert get(url, "/stream/cam0.mjpg")[0] == 404  # no video
    assert run.stop() == 130  # SIGINT: outputs finalized, exit 130


def test_serve_with_token_from_environment(run_factory: type[Run]) -> None:
    run = run_factory("--serve", "127.0.0.1:0", "--realtime", env={"EDGECV_SERVE_TOKEN": "t0k"})
    url = run.wait_url()
    assert any("token required" in line for line in run.lines)
    assert get(url, "/api/status")[0] == 401
    assert get(url, "/api/status?token=nope")[0] == 401
    assert wait_for(lambda: _frames(url, "t0k") > 0, timeout=60)
    status, headers, body = get(url, "/snapshot/cam0.jpg?token=t0k")
    assert status == 200 and cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == (480, 640, 3)
    assert run.stop() == 130


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--virtual-time-budget=3000"]


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("EDGECV_REQUIRE_CHROMIUM"):
        pytest.fail("chromium is not installed (CI installs it: apt-get install -y chromium)")
    return found


@pytest.mark.slow
def test_the_page_in_a_real_browser(run_factory: type[Run], tmp_path: Path) -> None:
    """Headless Chromium opens the page of `edgecv run --serve` on the demo video: a video frame with boxes, live figures."""
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    run = run_factory("--serve", "127.0.0.1:0", "--realtime")
    url = run.wait_url()
    assert wait_for(lambda: _frames(url) > 0, timeout=60)
    shot = tmp_path / "page.png"

    def browse(*args: str) -> subprocess.Popen[str]:
        profile = tempfile.mkdtemp(dir=tmp_path)
        return subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    # both at once: the demo video lasts 10 s at --realtime
    screenshot = browse("--window-size=1280,800", f"--screenshot={shot}")
    dump = browse("--dump-dom")
    dom, _ = dump.communicate(timeout=60)
    screenshot.wait(60)
    status = _status(url)["sources"][0]
    assert run.stop() in (0, 130)

    # the figures, as the browser rendered them (JavaScript filled them from /api/status)
    def cell(name: str) -> str:
        m = re.search(rf'id="cam0-{name}"[^>]*>([^<]*)<', dom)
        assert m, f"no cam0-{name} in the page:\n{dom[:3000]}"
        return m.group(1)

    fps = re.fullmatch(r"FPS (\d+\.\d)", cell("fps"))
    assert fps and float(fps.group(1)) > 0
    assert int(cell("frames")) > 0
    assert cell("model") == status["model"]["name"] == "shapes-det.onnx"
    assert cell("backend") == f"{status['model']['backend']} / {status['model']['input_size']}"
    assert cell("task") == "detect / fp32"
    assert re.fullmatch(r"\d+\.\d\d", cell("infer-p50")) and re.fullmatch(r"\d+\.\d\d", cell("infer-p99"))
    assert re.fullmatch(r"\d+\.\d / \d+\.\d ms", cell("age"))
    assert cell("dropped").isdigit() and cell("reconnects").startswith("0")

    # the screenshot: a video frame (the demo's green background) with coloured boxes on it
    img = cv2.imread(str(shot))
    assert img is not None, "chromium wrote no screenshot"
    b, g, r = (img[..., k].astype(int) for k in range(3))
    green = (g > 120) & (g > r + 15) & (g > b + 15)
    # the largest green blob (the page's own green text is small and elsewhere)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(green.astype(np.uint8), connectivity=8)
    assert n > 1, "nothing green on the page: no video frame"
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x0, y0, w, h, area = stats[k]
    assert area > 100_000, f"no video frame on the page (largest green region {area} px)"
    assert 400 <= w <= 700 and 300 <= h <= 520, (w, h)  # the 640x480 frame, at about its size
    x1, y1 = x0 + w - 1, y0 + h - 1
    region = img[y0 : y1 + 1, x0 : x1 + 1].reshape(-1, 1, 3).astype(int)
    palette = np.array(PALETTE, int).reshape(1, -1, 3)
    near = (np.abs(region - palette).max(axis=2) < 40).any(axis=1)
    boxes = near & ~green[y0 : y1 + 1, x0 : x1 + 1].reshape(-1)
    assert boxes.sum() > 1500, f"no boxes drawn on the frame ({boxes.sum()} box-coloured pixels)"


def test_metrics_only_without_prometheus_client_names_the_extra() -> None:
    code = "import sys; sys.modules['prometheus_client'] = None; from edgecv.cli import main; sys.argv[0] = 'edgecv'; main()"
    result = subprocess.run([sys.executable, "-c", code, "run", "--metrics-only", "127.0.0.1:0", "--max-frames", "1"],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 3, result.stderr
    assert "prometheus_client is not importable" in result.stderr and "pip install 'edgecv[serve]'" in result.stderr
