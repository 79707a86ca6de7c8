"""Stage 5: frame sources, output sinks and the real-time run loop.

The loop is the streaming API; this package is callable as ``edgecv.stream(model, sources, ...)``
(:func:`~edgecv.stream.streaming.open_stream`)::

    with edgecv.stream(model, ["cam0.mp4", "rtsp://cam1/s"], batch_timeout_ms=33) as results:
        for r in results:
            print(r.source_index, r.index, len(r.result))

``run_pipeline`` (one source, sinks) and ``run_sources`` (several) consume it:

    from edgecv.stream import open_source, run_pipeline, VideoSink, JsonlSink

    with open_source("rtsp://cam/stream") as source:
        summary = run_pipeline(model, source, [VideoSink("out.mp4", source.fps, source.size)])
"""

from __future__ import annotations

import sys
import types
from typing import Any

from edgecv.stream.pipeline import RunSummary, StreamSummary, install_signal_handlers, run_pipeline, run_sources
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
from edgecv.stream.streaming import Stream, StreamConfig, StreamStats, open_stream

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
    "Stream",
    "StreamConfig",
    "StreamStats",
    "StreamSummary",
    "VideoSink",
    "WindowSink",
    "csi_pipeline",
    "install_signal_handlers",
    "open_source",
    "open_stream",
    "percentiles",
    "run_pipeline",
    "run_sources",
]


class _CallableModule(types.ModuleType):
    """Lets ``edgecv.stream(model, sources, ...)`` call :func:`open_stream` while ``edgecv.stream``
    stays the package (Python binds a subpackage to its parent's attribute, so a function of that
    name in ``edgecv/__init__.py`` would be replaced the first time this package is imported)."""

    def __call__(self, model: Any, sources: Any, config: StreamConfig | None = None, **options: Any) -> Stream:
        return open_stream(model, sources, config, **options)


sys.modules[__name__].__class__ = _CallableModule
