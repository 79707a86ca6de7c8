"""The HTTP side: a page with every source's live MJPEG stream and figures, JSON status, Prometheus metrics.

Endpoints (all GET):

* ``/``                      the page (video + figures, refreshed every second)
* ``/stream/<id>.mjpg``      the annotated stream of one source, ``multipart/x-mixed-replace`` JPEGs
* ``/snapshot/<id>.jpg``     the newest annotated frame of one source
* ``/api/status``            the figures as JSON (same as the page)
* ``/metrics``               Prometheus text format
* ``/healthz``               ``ok`` (no token needed: for load balancers and systemd watchdogs)

With ``video=False`` (``run --metrics-only``) only the last three exist. Runs on stdlib
:class:`~http.server.ThreadingHTTPServer`: one thread per connection, daemon threads,
so a viewer that never reads ties up only its own thread until ``send_timeout_s``.
"""

from __future__ import annotations

import hmac
import http.cookies
import json
import logging
import socket
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from edgecv.errors import ConfigError, MissingDependencyError
from edgecv.serve.config import ServeConfig
from edgecv.serve.hub import Hub, PreviewSink
from edgecv.serve.page import PAGE

log = logging.getLogger(__name__)

BOUNDARY = "edgecvframe"
COOKIE = "edgecv_token"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class PreviewServer:
    """Serves a :class:`Hub` over HTTP on a background thread.

    Args:
        config: address, token, rates.
        hub: the channels the run loop's :class:`~edgecv.serve.hub.PreviewSink` objects write to;
            None makes one with the config's ``max_fps`` and ``jpeg_quality``.

    Raises:
        ConfigError: the address cannot be bound (in use, not an address of this machine).
        MissingDependencyError: ``video=False`` and ``prometheus-client`` is missing.
    """

    def __init__(self, config: ServeConfig, hub: Hub | None = None) -> None:
        own_hub = hub is None
        self.hub = hub = hub if hub is not None else Hub(max_fps=config.max_fps, jpeg_quality=config.jpeg_quality)
        self.config = config
        try:
            self._start(config, hub)
        except BaseException:
            if own_hub:
                hub.close()
            raise

    def _start(self, config: ServeConfig, hub: Hub) -> None:
        self.metrics: Any = None
        self.metrics_error: str | None = None
        try:
            from edgecv.serve.metrics import HubMetrics

            self.metrics = HubMetrics(hub)
        except MissingDependencyError as exc:
            if not config.video:
                raise
            self.metrics_error = str(exc)
            log.warning("/metrics is off: %s", exc.message + (f" ({exc.hint})" if exc.hint else ""))
        self._streams = 0
        self._streams_lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"app": self, "timeout": config.send_timeout_s})
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        server_cls = type("Server", (_HTTPServer,), {"address_family": family})
        try:
            self._httpd = server_cls((config.host, config.port), handler)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve on {config.host}:{config.port}: {exc.strerror or exc}",
                hint="pick another port (e.g. --serve 8081), or an address of this machine (0.0.0.0 for all)",
            ) from exc
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="edgecv-serve", daemon=True)
        self._thread.start()
        if config.exposed:
            log.warning(
                "serving on %s:%d, reachable from the network%s; to keep it on this machine use 127.0.0.1 and an SSH tunnel",
                config.host, self.port, "" if config.token else " WITHOUT a token (anyone on the network sees the camera; set --serve-token)",
            )

    @property
    def url(self) -> str:
        host = self.config.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/"

    def close(self) -> None:
        """Stop serving, end every stream and close the socket; idempotent."""
        self.hub.close()
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=2.0)

    def __enter__(self) -> PreviewServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sink(self, source_id: str = "cam0", *, model: Any = None, source: str = "", annotate: bool = True,
             live: bool | None = None) -> PreviewSink:
        """A run-loop sink for one source, and the channel it writes to.

        Args:
            source_id: key of the source in URLs and metric labels.
            model: the loaded model (its task picks the annotator; its facts are shown).
            source: what the source is (path, URL, camera), shown on the page.
            annotate: draw the model's results on the preview (on the encoder thread). False
                when the frames reach the sink already drawn (the loop draws when ``--save`` or
                ``--show`` is on).
            live: the source keeps only the newest frame (its ``is_live``); frame age is
                recorded for live sources only (None: unknown, recorded).
        """
        draw = None
        if annotate and model is not None and self.config.video:
            from edgecv.vision.draw import default_annotator

            draw = default_annotator(model.task).annotate
        return PreviewSink(self.hub.channel(source_id, source=source, model=model, annotate=draw, live=live))

    def acquire_stream(self) -> bool:
        with self._streams_lock:
            if self._streams >= self.config.max_viewers:
                return False
            self._streams += 1
            return True

    def release_stream(self) -> None:
        with self._streams_lock:
            self._streams -= 1


class _Handler(BaseHTTPRequestHandler):
    app: PreviewServer
    server_version = "edgecv"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    # ---- helpers ----
    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _text(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, (text + "\n").encode(), "text/plain; charset=utf-8", headers)

    def _token_ok(self, query: dict[str, list[str]]) -> tuple[bool, str | None]:
        """(allowed, token given in the query)."""
        want = self.app.config.token
        if want is None:
            return True, None
        given: list[str] = list(query.get("token", []))
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            given.append(auth[7:].strip())
        cookie = self.headers.get("Cookie")
        if cookie:
            jar = http.cookies.SimpleCookie()
            try:
                jar.load(cookie)
            except http.cookies.CookieError:
                pass
            if COOKIE in jar:
                given.append(jar[COOKIE].value)
        ok = any(hmac.compare_digest(g.encode(), want.encode()) for g in given)
        return ok, (query.get("token") or [None])[0]

    # ---- routing ----
    def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = urllib.parse.parse_qs(url.query)
        try:
            if path == "/healthz":
                return self._text(200, "ok")
            ok, query_token = self._token_ok(query)
            if not ok:
                return self._text(
                    HTTPStatus.UNAUTHORIZED,
                    "unauthorized: wrong or missing token; open /?token=<token> or send 'Authorization: Bearer <token>'",
                    {"WWW-Authenticate": 'Bearer realm="edgecv"'},
                )
            video = self.app.config.video
            if path == "/api/status":
                body = json.dumps(self.app.hub.status(), allow_nan=False).encode()
                return self._send(200, body, "application/json")
            if path == "/metrics":
                return self._metrics()
            if path == "/" and video:
                headers = {}
                if query_token:  # the page's <img> and fetch() then carry it without putting it in every URL
                    headers["Set-Cookie"] = f"{COOKIE}={query_token}; HttpOnly; SameSite=Strict; Path=/"
                return self._send(200, PAGE.encode(), "text/html; charset=utf-8", headers)
            if path == "/":
                return self._text(200, "edgecv metrics-only server: /metrics (Prometheus), /api/status (JSON), /healthz")
            if video and path.startswith("/stream/") and path.endswith(".mjpg"):
                return self._stream(path[len("/stream/") : -len(".mjpg")])
            if video and path.startswith("/snapshot/") and path.endswith(".jpg"):
                return self._snapshot(path[len("/snapshot/") : -len(".jpg")])
            return self._text(404, f"not found: {url.path} (try /, /api/status, /metrics)")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True  # the client went away or stopped reading; its problem, not ours

    def _metrics(self) -> None:
        metrics = self.app.metrics
        if metrics is None:
            return self._text(501, f"metrics unavailable: {self.app.metrics_error}")
        body, ctype = metrics.render()
        self._send(200, body, ctype)

    def _channel(self, source_id: str) -> Any:
        ch = self.app.hub.get(urllib.parse.unquote(source_id))
        if ch is None:
            ids = ", ".join(c.id for c in self.app.hub.channels()) or "none yet"
            self._text(404, f"no source {source_id!r} (sources: {ids})")
        return ch

    def _snapshot(self, source_id: str) -> None:
        ch = self._channel(source_id)
        if ch is None:
            return
        jpeg = ch.snapshot()
        if jpeg is None:
            return self._text(503, "no frame yet", {"Retry-After": "1"})
        self._send(200, jpeg, "image/jpeg")

    def _stream(self, source_id: str) -> None:
        ch = self._channel(source_id)
        if ch is None:
            return
        if not self.app.acquire_stream():
            return self._text(503, f"too many viewers ({self.app.config.max_viewers}); close another tab", {"Retry-After": "5"})
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                return
            hub = self.app.hub
            with ch.viewer():
                seq = 0
                while not hub.closed:
                    jpeg, seq = ch.next_jpeg(seq, timeout=1.0)
                    if jpeg is None:
                        continue
                    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                    self.wfile.write(head + jpeg + b"\r\n")
        finally:
            self.app.release_stream()
