"""What the preview / metrics server listens on and how it behaves: :class:`ServeConfig`."""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass

from edgecv.errors import ConfigError

log = logging.getLogger(__name__)

TOKEN_ENV = "EDGECV_SERVE_TOKEN"
DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """Settings of the web preview and Prometheus endpoint.

    Attributes:
        host: address to bind; loopback (``127.0.0.1``, ``::1``, ``localhost``) unless told otherwise.
            Any other address exposes the robot's camera to the network (see :attr:`exposed`).
        port: TCP port; 0 picks a free one (the server's ``url`` tells which).
        token: when set, every request needs it (``?token=…``, ``Authorization: Bearer …``
            or the ``edgecv_token`` cookie); None serves without one.
        video: serve the page and the MJPEG streams; False serves only ``/metrics``,
            ``/api/status`` and ``/healthz`` (``run --metrics-only``).
        max_fps: the most JPEG frames per second encoded per stream (while someone watches).
        jpeg_quality: 1..100.
        max_viewers: concurrent MJPEG streams over all sources; more get HTTP 503.
        send_timeout_s: a viewer whose socket accepts nothing for this long is dropped.
    """

    host: str = DEFAULT_HOST
    port: int = 8080
    token: str | None = None
    video: bool = True
    max_fps: float = 15.0
    jpeg_quality: int = 80
    max_viewers: int = 32
    send_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("serve host is empty", hint="e.g. 127.0.0.1:8080, or 0.0.0.0:8080 for every interface")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"serve port must be 0..65535, got {self.port}", hint="e.g. --serve 8080")
        if self.token is not None and (not self.token or any(c.isspace() for c in self.token)):
            raise ConfigError("the serve token must be a non-empty string without spaces", hint="e.g. --serve-token $(openssl rand -hex 16)")
        if not 0 < self.max_fps <= 120:
            raise ConfigError(f"preview fps must be in (0, 120], got {self.max_fps}", hint="e.g. --serve-fps 15")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"JPEG quality must be 1..100, got {self.jpeg_quality}", hint="e.g. 80")
        if self.max_viewers < 1:
            raise ConfigError(f"max_viewers must be >= 1, got {self.max_viewers}")
        if self.send_timeout_s <= 0:
            raise ConfigError(f"send_timeout_s must be > 0, got {self.send_timeout_s}")

    @property
    def exposed(self) -> bool:
        """True when the address is reachable from other machines (not loopback)."""
        return not is_loopback(self.host)

    @classmethod
    def parse(cls, address: str, *, token: str | None = None, option: str = "--serve", **kwargs: object) -> ServeConfig:
        """Build from ``[HOST:]PORT`` (``8080``, ``0.0.0.0:8080``, ``[::1]:8080``).

        ``token`` None falls back to the ``EDGECV_SERVE_TOKEN`` environment variable (read here,
        at call time); an empty variable means no token.

        Raises:
            ConfigError: the address is not ``[HOST:]PORT``.
        """
        host, port = parse_address(address, option=option)
        if token is None:
            token = os.environ.get(TOKEN_ENV) or None
        return cls(host=host, port=port, token=token, **kwargs)  # type: ignore[arg-type]


def parse_address(text: str, *, option: str = "--serve") -> tuple[str, int]:
    """``"8080"`` -> ``("127.0.0.1", 8080)``; ``"0.0.0.0:80"``; ``"[::1]:8080"`` -> ``("::1", 8080)``.

    Raises:
        ConfigError: no port, a port that is not a number, or an unbracketed IPv6 address.
    """
    text = text.strip()
    hint = f"use {option} PORT or {option} HOST:PORT, e.g. {option} 8080 or {option} 0.0.0.0:8080"
    host = DEFAULT_HOST
    port_text = text
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or not text[end + 1 :].startswith(":"):
            raise ConfigError(f"{option}: cannot read {text!r} as [IPV6]:PORT", hint=hint)
        host, port_text = text[1:end], text[end + 2 :]
    elif ":" in text:
        if text.count(":") > 1:
            raise ConfigError(f"{option}: IPv6 addresses need brackets, got {text!r}", hint=f"e.g. {option} [::1]:8080")
        host, port_text = text.rsplit(":", 1)
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{option}: port must be a number, got {port_text!r} in {text!r}", hint=hint) from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{option}: port must be 0..65535, got {port}", hint=hint)
    return host or DEFAULT_HOST, port


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IPs (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from outside
