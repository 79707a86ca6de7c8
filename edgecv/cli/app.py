"""The Typer app, its global options and the one error handler every command shares."""

from __future__ import annotations

import errno
import functools
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from typer.core import TyperGroup

from edgecv import __version__
from edgecv.errors import EXIT_BUG, EXIT_INTERRUPTED, EdgecvError, OutputError
from edgecv.log import console, out, setup_logging

# the order `edgecv --help` lists commands in: the pipeline's (Typer would put groups such as `deploy` last)
PIPELINE_ORDER = ("export", "convert", "prune", "calibrate", "build-engine", "deploy", "run", "ros", "eval", "bench", "info", "shapes")


class _PipelineOrderGroup(TyperGroup):
    def list_commands(self, ctx: Any) -> list[str]:
        rank = {name: i for i, name in enumerate(PIPELINE_ORDER)}
        return sorted(super().list_commands(ctx), key=lambda name: rank.get(name, len(rank)))


app = typer.Typer(
    name="edgecv",
    cls=_PipelineOrderGroup,
    help="Detectors and segmenters from PyTorch to a fast real-time loop on Jetson and NVIDIA GPUs (ONNX Runtime on any CPU).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
state = {"verbose": False, "quiet": False}
F = TypeVar("F", bound=Callable[..., Any])


# OS errors that mean "this output cannot be written", not a bug: one line and exit 1 wherever they escape
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EFBIG})


def _as_user_error(exc: BaseException) -> EdgecvError | None:
    """A missing optional module (cv2, torch, ...) or a full/read-only disk that escaped the library, as a user error."""
    if isinstance(exc, ImportError):
        from edgecv._optional import missing_dependency, optional_module

        module = optional_module(exc)
        return missing_dependency(module, exc) if module else None
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        where = f" {exc.filename}" if exc.filename else ""
        return OutputError(f"cannot write{where}: {exc.strerror}", hint="free disk space, or choose a writable output path")
    return None


def _report(exc: EdgecvError) -> None:
    if state["verbose"]:
        console.print(traceback.format_exc(), markup=False, highlight=False)
    console.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
    if exc.hint:
        console.print(f"  [bold]fix:[/] {escape(exc.hint)}", highlight=False, soft_wrap=True)


def handle_errors(func: F) -> F:
    """Turn an EdgecvError into one `error:` line + fix hint and its exit code; bugs keep a traceback.

    A missing optional module (exit 3) and a full or read-only disk (exit 1) are user errors
    wherever they surface; see :data:`edgecv.errors.EXIT_CODES`.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except EdgecvError as exc:
            _report(exc)
            raise typer.Exit(exc.exit_code) from None
        except (ImportError, OSError) as exc:
            user = _as_user_error(exc)
            if user is None:
                _bug()
            _report(user)
            raise typer.Exit(user.exit_code) from None
        except KeyboardInterrupt:
            console.print("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception:
            _bug()

    return wrapper  # type: ignore[return-value]


def _bug() -> None:
    console.print(traceback.format_exc(), markup=False, highlight=False)
    console.print("[bold red]internal error[/] (a bug in edgecv): please report it with the trace above")
    raise typer.Exit(EXIT_BUG) from None


def _version(value: bool) -> None:
    if value:
        out.print(f"edgecv {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging and full tracebacks.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
    version: Annotated[bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = None,
) -> None:
    state["verbose"], state["quiet"] = verbose, quiet
    setup_logging(verbose, quiet)
    # FFmpeg's and OpenCV's own warnings ("moov atom not found", "[ WARN:0@...]") would interleave with
    # edgecv's lines; edgecv reports what they mean itself. -v shows them. The user's own setting wins.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "24" if verbose else "-8")  # AV_LOG_WARNING / AV_LOG_QUIET
    os.environ.setdefault("OPENCV_LOG_LEVEL", "WARNING" if verbose else "ERROR")


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM ends any command like Ctrl+C: temp files removed, outputs finalized, exit 130


def main() -> None:
    """Console-script entry point."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)  # `run` installs its own graceful handler for its loop
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
