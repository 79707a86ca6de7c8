"""The mailbox between the loop and the server, and the server's settings."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
from servekit import Feeder, frame_result, index_frame, wait_for

from edgecv.errors import ConfigError
from edgecv.serve import Hub, PreviewSink, ServeConfig, is_loopback, parse_address, summary_counters
from edgecv.serve.config import TOKEN_ENV


@pytest.mark.parametrize(
    ("text", "want"),
    [("8080", ("127.0.0.1", 8080)), ("0.0.0.0:80", ("0.0.0.0", 80)), ("[::1]:8081", ("::1", 8081)),
     ("robot.local:9100", ("robot.local", 9100)), (":8080", ("127.0.0.1", 8080)), ("0", ("127.0.0.1", 0))],
)
def test_parse_address(text: str, want: tuple[str, int]) -> None:
    assert parse_address(text) == want


@pytest.mark.parametrize(("text", "match"), [("http", "must be a number"), ("::1:80", "need brackets"), ("70000", "0..65535"), ("[::1]80", "IPV6")])
def test_parse_address_errors(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        parse_address(text, option="--metrics-only")
    assert "--metrics-only" in str(err.value)


def test_loopback_and_exposed() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.1.2.3") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("robot.local")
    assert not ServeConfig().exposed and ServeConfig(host="0.0.0.0").exposed


def test_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "abc")
    assert ServeConfig.parse("8080").token == "abc"
    assert ServeConfig.parse("8080", token="given").token == "given"
    monkeypatch.setenv(TOKEN_ENV, "")
    assert ServeConfig.parse("8080").token is None


@pytest.mark.parametrize("kwargs", [{"token": "a b"}, {"token": ""}, {"max_fps": 0}, {"jpeg_quality": 0}, {"max_viewers": 0}, {"port": -1}])
def test_config_validates(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        ServeConfig(**kwargs)  # type: ignore[arg-type]


def test_source_ids_must_fit_urls_and_labels() -> None:
    hub = Hub()
    try:
        for bad in ("", "cam 0", "a/b", 'x"y'):
            with pytest.raises(ConfigError, match="source id"):
                hub.channel(bad)
        assert hub.channel("rear-left_2.0").id == "rear-left_2.0"
    finally:
        hub.close()


def test_a_stuck_encoder_never_blocks_the_loop() -> None:
    """The encoder thread hangs inside annotate (a pathological frame); the loop's writes all still return."""
    hub = Hub(max_fps=100)
    release = threading.Event()
    entered = threading.Event()

    def stuck_annotate(frame: np.ndarray, result: object) -> None:
        entered.set()
        release.wait(30)

    ch = hub.channel("cam0", annotate=stuck_annotate)
    sink = PreviewSink(ch)
    try:
        with ch.viewer():
            sink.write(index_frame(0), frame_result(0))
            assert entered.wait(10)
            for i in range(500):  # all return although the encoder is stuck holding frame 0
                sink.write(index_frame(i % 32), frame_result(i % 32))
            assert ch.frames == 501
            assert ch.encoded == 0
            figs = ch.figures()  # the figures keep working too
            assert figs["frames"] == 501
    finally:
        release.set()
        hub.close()


def test_counters_come_from_the_run_summary() -> None:
    hub = Hub()
    try:
        summary = SimpleNamespace(dropped=0, bad_frames=0, reconnects=0, reconnecting=False, live=True, stop_reason="running")
        seen: list[object] = []
        status = hub.status_callback("cam0", then=seen.append)
        status(summary)
        assert seen == [summary]
        summary.dropped, summary.bad_frames, summary.reconnects, summary.reconnecting = 7, 2, 1, True
        figs = hub.channel("cam0").figures()
        assert (figs["dropped"], figs["bad_frames"], figs["reconnects"], figs["reconnecting"], figs["live"]) == (7, 2, 1, True, True)
        assert summary_counters(summary)["dropped"] == 7
    finally:
        hub.close()


def test_figures_after_the_loop_finished_its_sink_time() -> None:
    """The loop sets ``timings.sink`` after the sinks return; the figures use the final value."""
    hub = Hub()
    try:
        ch = hub.channel("cam0")
        sink = PreviewSink(ch)
        results = []
        for i in range(20):
            r = frame_result(i)
            sink.write(index_frame(i), r)
            r.timings.sink = 4.0  # what the loop does after its sinks
            results.append(r)
        assert wait_for(lambda: ch.figures()["stages_ms"]["sink"]["count"] == 20, timeout=5)
        figs = ch.figures()
        assert figs["stages_ms"]["sink"]["p50"] == 4.0
        assert figs["stages_ms"]["total"]["p50"] == pytest.approx(np.median([r.timings.total for r in results]))
    finally:
        hub.close()


def test_results_with_a_source_id_go_to_their_channel() -> None:
    """A multi-source loop tags results with ``source_id``; one sink then feeds every source's channel."""
    hub = Hub()
    try:
        sink = PreviewSink(hub.channel("cam0", model={"task": "detect"}))
        for i in range(6):
            r = frame_result(i)
            tagged = SimpleNamespace(result=r.result, timings=r.timings, age_ms=r.age_ms, source_id=f"cam{i % 3}")
            sink.write(index_frame(i), tagged)  # type: ignore[arg-type]
        assert {ch.id: ch.frames for ch in hub.channels()} == {"cam0": 2, "cam1": 2, "cam2": 2}
        assert hub.get("cam2") is not None and hub.get("cam2").model == {"task": "detect"}  # type: ignore[union-attr]
    finally:
        hub.close()


def test_hub_close_releases_waiting_viewers() -> None:
    hub = Hub()
    ch = hub.channel("cam0")
    done = threading.Event()

    def wait() -> None:
        with ch.viewer():
            while not hub.closed:
                ch.next_jpeg(0, timeout=5.0)
        done.set()

    with Feeder(PreviewSink(ch), fps=50):
        t = threading.Thread(target=wait, daemon=True)
        t.start()
        assert wait_for(lambda: ch.encoded > 0)
        hub.close()
        assert done.wait(3)


def test_frame_age_only_for_live_sources() -> None:
    """A file's 'age' is read-ahead queue time, not staleness: not recorded when the source is known not live."""
    hub = Hub()
    try:
        files, cams = PreviewSink(hub.channel("file", live=False)), PreviewSink(hub.channel("cam", live=True))
        for i in range(5):
            files.write(index_frame(i), frame_result(i, age_ms=40.0))
            cams.write(index_frame(i), frame_result(i, age_ms=40.0))
        hub.close()  # drains everything
        f, c = hub.get("file").figures(), hub.get("cam").figures()  # type: ignore[union-attr]
        assert f["age_ms"]["count"] == 0 and f["age_ms"]["p50"] is None
        assert c["age_ms"]["count"] == 5 and c["age_ms"]["p50"] == 40.0
    finally:
        hub.close()


def test_a_frame_that_fails_to_draw_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    hub = Hub(max_fps=100)
    calls = [0]

    def flaky(frame: np.ndarray, result: object) -> None:
        calls[0] += 1
        if calls[0] % 2:
            raise ValueError("bad box")

    ch = hub.channel("cam0", annotate=flaky)
    try:
        with Feeder(PreviewSink(ch), fps=100), ch.viewer():
            jpeg, seq = ch.next_jpeg(0, timeout=10)
            jpeg2, _ = ch.next_jpeg(seq, timeout=10)
            assert jpeg is not None and jpeg2 is not None
        assert caplog.text.count("bad box") == 1  # warned once, not per frame
    finally:
        hub.close()
