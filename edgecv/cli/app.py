"""The Typer app, its global options and the one error handler every command shares."""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape

from edgecv import __version__
from edgecv.errors import EXIT_BUG, EXIT_INTERRUPTED, EdgecvError
from edgecv.log import console, out, setup_logging

app = typer.Typer(
    name="edgecv",
    help="Detectors and segmenters from PyTorch to a fast real-time loop on Jetson and NVIDIA GPUs (ONNX Runtime on any CPU).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
state = {"verbose": False, "quiet": False}
F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Turn an EdgecvError into one `error:` line + fix hint and its exit code; bugs keep a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except EdgecvError as exc:
            if state["verbose"]:
                console.print(traceback.format_exc(), markup=False, highlight=False)
            console.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
            if exc.hint:
                console.print(f"  [bold]fix:[/] {escape(exc.hint)}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            console.print("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception:
            console.print(traceback.format_exc(), markup=False, highlight=False)
            console.print("[bold red]internal error[/] (a bug in edgecv): please report it with the trace above")
            raise typer.Exit(EXIT_BUG) from None

    return wrapper  # type: ignore[return-value]


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



def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
