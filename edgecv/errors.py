"""The edgecv error hierarchy and the exit-code table every command follows.

Every error a user can cause is an :class:`EdgecvError`: its message says what
happened (with the values involved) and its ``hint`` says how to fix it. The CLI
prints both on one line each and exits with :attr:`EdgecvError.exit_code`; any
other exception is a bug and keeps its traceback.

Exit codes (:data:`EXIT_CODES`, documented in the README and enforced by
``tests/reliability/test_exit_codes.py``):

====  ==========================================================================
0     success
1     runtime failure: a source, a disk (full, I/O error), an engine, an export check
2     bad options or configuration, including an output path that cannot be written
3     a missing optional dependency (an extra, OpenCV, TensorRT)
4     a bad or missing model file
130   interrupted (Ctrl+C / SIGTERM); outputs were finalized
70    a bug in edgecv (traceback shown)
====  ==========================================================================
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


class OutputError(EdgecvError):
    """An output file could not be written while working (disk full, I/O error); the old file, if any, is kept."""


class SinkError(OutputError):
    """An output of the run loop (video file, JSONL, window) could not be written or shown."""


class DatasetError(EdgecvError):
    """A dataset folder or annotation file is missing or malformed."""


EXIT_OK = 0
EXIT_FAILURE = EdgecvError.exit_code
EXIT_USAGE = ConfigError.exit_code
EXIT_MISSING_EXTRA = MissingDependencyError.exit_code
EXIT_BAD_MODEL = ArtifactError.exit_code
# Exit code for Ctrl+C / SIGTERM, as shells report a SIGINT death.
EXIT_INTERRUPTED = 130
# Exit code for an unexpected exception (a bug): EX_SOFTWARE from sysexits.h.
EXIT_BUG = 70

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_FAILURE: "runtime failure (source, disk, engine, export check)",
    EXIT_USAGE: "bad options or configuration (including an output path that cannot be written)",
    EXIT_MISSING_EXTRA: "missing optional dependency (extra, OpenCV, TensorRT)",
    EXIT_BAD_MODEL: "bad or missing model file",
    EXIT_INTERRUPTED: "interrupted (Ctrl+C / SIGTERM); outputs finalized",
    EXIT_BUG: "a bug in edgecv (traceback shown)",
}
