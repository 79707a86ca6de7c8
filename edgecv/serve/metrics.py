"""Prometheus metrics of a :class:`~edgecv.serve.hub.Hub`, in a registry of their own.

Uses ``prometheus-client`` (the ``serve`` extra), imported when the server starts, never
at module import. Counters and gauges are read from the hub at scrape time (a custom
collector); latency and frame-age histograms are fed by the hub's stats thread from the
timings the loop left in its mailbox, so the inference thread never touches a metric.

Every series carries a ``source`` label (the source id), so one robot with several
cameras, or a fleet of robots, is one dashboard. See :data:`METRICS` for the names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from edgecv._optional import require
from edgecv.serve.hub import STAGES, Hub

# seconds; 1 ms .. 2.5 s covers a Jetson Nano at 320 px to a CPU fallback at 1280 px
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.033, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5)
AGE_BUCKETS = (0.005, 0.01, 0.02, 0.033, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

# name -> (type, help); the README's Grafana list is this table
METRICS: dict[str, tuple[str, str]] = {
    "edgecv_frames_total": ("counter", "Frames processed (through every output)."),
    "edgecv_dropped_frames_total": ("counter", "Frames a live source skipped because the loop was busy (newest frame wins)."),
    "edgecv_bad_frames_total": ("counter", "Frames the source could not decode (skipped)."),
    "edgecv_reconnects_total": ("counter", "Times a live source was reopened after it dropped."),
    "edgecv_stage_latency_seconds": ("histogram", "Per-frame time of a loop stage (label stage: capture, pre, infer, post, sink, total)."),
    "edgecv_frame_age_seconds": ("histogram", "Capture to start of inference (live sources)."),
    "edgecv_fps": ("gauge", "Frames per second over the last 2 s (0 when the stream stopped)."),
    "edgecv_last_frame_age_seconds": ("gauge", "Seconds since the newest processed frame (grows when a camera or the loop stalls)."),
    "edgecv_source_reconnecting": ("gauge", "1 while the source is reconnecting."),
    "edgecv_preview_viewers": ("gauge", "Browsers watching the MJPEG preview."),
    "edgecv_model_info": ("info", "The model a source runs: labels model, task, precision, backend, input_size."),
}


def _strip_total(name: str) -> str:
    return name[: -len("_total")] if name.endswith("_total") else name


class HubMetrics:
    """Registry + histograms for ``hub``; installs itself as the hub's observer.

    Raises:
        MissingDependencyError: ``prometheus-client`` is not installed (``pip install 'edgecv[serve]'``).
    """

    def __init__(self, hub: Hub) -> None:
        prom = require("prometheus_client", extra="serve")
        self._prom = prom
        self.hub = hub
        self.registry = prom.CollectorRegistry(auto_describe=True)
        self._latency = prom.Histogram(
            "edgecv_stage_latency_seconds", METRICS["edgecv_stage_latency_seconds"][1], ["source", "stage"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self._age = prom.Histogram(
            "edgecv_frame_age_seconds", METRICS["edgecv_frame_age_seconds"][1], ["source"],
            buckets=AGE_BUCKETS, registry=self.registry,
        )
        self._children: dict[str, tuple[list[Any], Any]] = {}
        self.registry.register(_HubCollector(hub))
        hub._observe = self.observe

    def observe(self, source_id: str, stage_ms: tuple[float, ...], age_ms: float) -> None:
        """Record one frame's stage times (ms, in :data:`~edgecv.serve.hub.STAGES` order) and age. Stats thread."""
        children = self._children.get(source_id)
        if children is None:
            children = self._children[source_id] = (
                [self._latency.labels(source=source_id, stage=s) for s in STAGES],
                self._age.labels(source=source_id),
            )
        for child, ms in zip(children[0], stage_ms):
            child.observe(ms / 1e3)
        if age_ms > 0:
            children[1].observe(age_ms / 1e3)

    def render(self) -> tuple[bytes, str]:
        """``(body, content_type)`` of a scrape (the classic Prometheus text format)."""
        self.hub.drain()
        exposition = self._prom.exposition
        return exposition.generate_latest(self.registry), exposition.CONTENT_TYPE_PLAIN_0_0_4


class _HubCollector:
    """Counters and gauges read from the hub when Prometheus scrapes."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def describe(self) -> list[Any]:
        return []  # dynamic: label values appear with sources

    def collect(self) -> Iterator[Any]:
        core = require("prometheus_client.core", extra="serve")
        figs = [ch.figures() for ch in self.hub.channels()]
        counters = {
            "edgecv_frames_total": "frames",
            "edgecv_dropped_frames_total": "dropped",
            "edgecv_bad_frames_total": "bad_frames",
            "edgecv_reconnects_total": "reconnects",
        }
        for name, key in counters.items():
            fam = core.CounterMetricFamily(_strip_total(name), METRICS[name][1], labels=["source"])
            for f in figs:
                fam.add_metric([f["id"]], float(f[key]))
            yield fam
        gauges = {
            "edgecv_fps": lambda f: f["fps"],
            "edgecv_last_frame_age_seconds": lambda f: f["last_frame_s_ago"] if f["last_frame_s_ago"] is not None else float("nan"),
            "edgecv_source_reconnecting": lambda f: 1.0 if f["reconnecting"] else 0.0,
            "edgecv_preview_viewers": lambda f: f["viewers"],
        }
        for name, get in gauges.items():
            fam = core.GaugeMetricFamily(name, METRICS[name][1], labels=["source"])
            for f in figs:
                fam.add_metric([f["id"]], float(get(f)))
            yield fam
        labels = ["source", "model", "task", "precision", "backend", "input_size"]
        info = core.InfoMetricFamily("edgecv_model", METRICS["edgecv_model_info"][1], labels=["source"])
        for f in figs:
            m = f["model"]
            info.add_metric([f["id"]], {k: str(m.get("name" if k == "model" else k, "")) for k in labels[1:]})
        yield info
