"""The edgecv error hierarchy.

Every error a user can cause is an :class:`EdgecvError`: its message says what
happened (with the values involved) and its ``hint`` says how to fix it. The CLI
prints both on one line each and exits with :attr:`EdgecvError.exit_code`; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgecvError(Exception):
    """Base class: a problem the user can fix. ``str()`` is message + fix hint."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  fix: {self.hint}"
        return self.message


class ConfigError(EdgecvError):
    """Bad or conflicting options (same exit code as a Click usage error)."""

    exit_code = 2


class MissingDependencyError(EdgecvError):
    """An optional dependency (an extra or a JetPack package) is not importable."""

    exit_code = 3


class ArtifactError(EdgecvError):
    """A model file is missing, unreadable, corrupt, or lacks what edgecv needs."""

    exit_code = 4


class ExportError(EdgecvError):
    """Exporting a PyTorch model to ONNX failed or did not match PyTorch."""


class CalibrationError(EdgecvError):
    """An INT8 graph did not pass the accuracy gate, or the held-out data cannot show that it does."""


class EngineError(EdgecvError):
    """An inference backend could not run (bad feeds, runtime failure)."""


class SourceError(EdgecvError):
    """A video/image/camera/stream source could not be opened or read."""


class SinkError(EdgecvError):
    """An output (video file, JSONL, window) could not be written or shown."""


class DatasetError(EdgecvError):
    """A dataset folder or annotation file is missing or malformed."""


# Exit code for Ctrl+C / SIGTERM, as shells report a SIGINT death.
EXIT_INTERRUPTED = 130
# Exit code for an unexpected exception (a bug): EX_SOFTWARE from sysexits.h.
EXIT_BUG = 70
