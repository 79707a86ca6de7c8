"""Watch a headless robot: a live preview page (MJPEG), JSON status and Prometheus ``/metrics``.

Example (the run loop, one camera)::

    from edgecv.serve import Hub, PreviewServer, ServeConfig

    with PreviewServer(ServeConfig.parse("8080")) as server:
        sink = server.sink("cam0", model=model, source="rtsp://cam/stream")
        run_pipeline(model, source, [sink], status=server.hub.status_callback("cam0"))

Any other consumer of the loop (a ROS 2 node, a custom callback loop) hooks in the same way:
create the server when asked, call ``sink.write(frame, frame_result)`` per processed frame
(``frame`` BGR uint8, not reused afterwards), and feed the counters with
``hub.status_callback(id)`` (given a ``RunSummary``) or ``hub.channel(id).set_counters(fn)``.

The loop only drops the newest frame and its timings into the hub's mailbox; drawing,
JPEG encoding (only while someone watches) and metrics happen on the server's threads.
``prometheus-client`` (``pip install 'edgecv[serve]'``) is needed for ``/metrics`` only.
"""

from __future__ import annotations

from edgecv.serve.config import TOKEN_ENV, ServeConfig, is_loopback, parse_address
from edgecv.serve.hub import Channel, Hub, PreviewSink, model_info, summary_counters
from edgecv.serve.server import PreviewServer

__all__ = [
    "TOKEN_ENV",
    "Channel",
    "Hub",
    "PreviewServer",
    "PreviewSink",
    "ServeConfig",
    "is_loopback",
    "model_info",
    "parse_address",
    "summary_counters",
]
