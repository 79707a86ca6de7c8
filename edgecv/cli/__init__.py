"""The ``edgecv`` command line: parse options, call the library, print results. No logic lives here.

One module per command group; importing a module registers its commands, so the modules are imported
here in pipeline order, which is the order ``edgecv --help`` lists them in.
"""

from __future__ import annotations

import importlib

from edgecv.cli.app import app, main

COMMAND_MODULES = ("export", "optimize", "quant", "engine", "deploy", "run", "ros", "measure", "info")
for _module in COMMAND_MODULES:
    importlib.import_module(f"edgecv.cli.{_module}")

__all__ = ["app", "main"]
