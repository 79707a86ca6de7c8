"""Stage 5: frame sources, output sinks and the real-time run loop.

Example::

    from edgecv.stream import open_source, run_pipeline, VideoSink, JsonlSink

    with open_source("rtsp://cam/stream") as source:
        summary = run_pipeline(model, source, [VideoSink("out.mp4", source.fps, source.size)])
"""

from __future__ import annotations

from edgecv.stream.pipeline import RunSummary, install_signal_handlers, run_pipeline
from edgecv.stream.sinks import CallbackSink, JsonlSink, Sink, VideoSink, WindowSink
from edgecv.stream.sources import (
    CaptureSource,
    Frame,
    ImageSource,
    ReconnectPolicy,
    Source,
    SourceStats,
    csi_pipeline,
    open_source,
)
from edgecv.stream.stats import LatencyStats, percentiles

__all__ = [
    "CallbackSink",
    "CaptureSource",
    "Frame",
    "ImageSource",
    "JsonlSink",
    "LatencyStats",
    "ReconnectPolicy",
    "RunSummary",
    "Sink",
    "Source",
    "SourceStats",
    "VideoSink",
    "WindowSink",
    "csi_pipeline",
    "install_signal_handlers",
    "open_source",
    "percentiles",
    "run_pipeline",
]
