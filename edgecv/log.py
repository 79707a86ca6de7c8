"""Console, logging and progress for the CLI (the library never configures handlers)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

#: width of tables and log lines written to a file or pipe (a CI log, ``| tee``): rich would cut them at 80 columns
LOG_WIDTH = 200


def _console(*, stderr: bool = False) -> Console:
    """A rich Console; when it is not a terminal (and ``COLUMNS`` does not say otherwise) it is ``LOG_WIDTH`` wide."""
    c = Console(stderr=stderr)
    if not c.is_terminal and "COLUMNS" not in os.environ:
        c.width = LOG_WIDTH
    return c


console = _console(stderr=True)
out = _console()


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, RichHandler):
            root.removeHandler(handler)
    handler = RichHandler(console=console, show_time=False, show_path=verbose, markup=False, rich_tracebacks=verbose)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("edgecv").setLevel(level)


ProgressFn = Callable[[int, int], None]
# ``stages(description, total) -> progress``: one bar per step of a multi-step job (calibrate, prune, build-engine)
StageFn = Callable[[str, int | None], ProgressFn]


def no_stages(description: str, total: int | None) -> ProgressFn:
    """A :data:`StageFn` that shows nothing (library calls without a progress display)."""
    return lambda done, total_now: None


@contextmanager
def stage_progress(quiet: bool = False) -> Iterator[StageFn]:
    """One Rich progress display for a multi-step job: ``start(description, total)`` adds a bar and returns its updater."""
    if quiet:
        yield no_stages
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:

        def start(description: str, total: int | None) -> Callable[[int, int], None]:
            task = bar.add_task(description, total=total)

            def update(done: int, total_now: int) -> None:
                bar.update(task, completed=done, total=total_now)

            return update

        yield start


@contextmanager
def progress_bar(description: str, total: int | None = None, quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A Rich progress bar driven by the library's ``progress(done, total)`` callbacks."""
    with stage_progress(quiet) as start:
        yield start(description, total)
