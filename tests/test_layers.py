"""Layers point down: no edgecv module imports one of a higher layer, not even inside a function.

Every ``import``/``from ... import`` anywhere in a module's source (top level, functions,
``TYPE_CHECKING`` blocks), relative imports, ``importlib.import_module("edgecv...")`` with a
literal name and ``edgecv.load`` (which is :mod:`edgecv.api`) are read from the AST. A module
may import its own layer or lower ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import edgecv

PACKAGE = Path(edgecv.__file__).parent

# low -> high; a module's layer is that of its longest matching prefix
LAYERS: list[tuple[str, ...]] = [
    ("edgecv", "edgecv.errors", "edgecv._optional", "edgecv.log", "edgecv.machine", "edgecv.assets"),  # stdlib-only core
    ("edgecv.artifact",),  # model metadata, atomic writes
    ("edgecv.graph",),  # ONNX graph tools (export, quant and the engine builder share them)
    ("edgecv.results", "edgecv.vision", "edgecv.data", "edgecv.track"),  # result types, host-side vision, datasets, the tracker
    ("edgecv.engine", "edgecv.cuda"),  # backends, TensorRT build, GPU preprocessing
    ("edgecv.api",),  # load() -> Detector / Segmenter
    ("edgecv.export", "edgecv.quant", "edgecv.optimize", "edgecv.zoo", "edgecv.deploy"),  # pipeline stages that make artifacts
    ("edgecv.stream",),  # the run loop
    ("edgecv.bench",),  # measurement of everything below
    ("edgecv.serve",),  # the live preview and metrics of a running loop
    ("edgecv.ros",),  # the ROS 2 node around the loop
    ("edgecv.cli",),  # thin front end
]

# Known lower -> higher imports outside this modules (stages that measure with bench):
# listed so that any *new* one fails; remove a line when its import is moved down.
KNOWN = {
    ("edgecv.quant.calibrate", "edgecv.bench.latency"),
    ("edgecv.quant.gate", "edgecv.bench.accuracy"),
    ("edgecv.optimize.job", "edgecv.bench.accuracy"),
    ("edgecv.optimize.job", "edgecv.bench.latency"),
}


def layer(module: str) -> int:
    best, rank = -1, None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    if rank is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return rank


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, source: str | None = None) -> set[str]:
    """Every edgecv module ``path`` imports (for ``from X import name``, ``X.name`` when that is a module)."""
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if _is_module(sub) else base)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("edgecv"):
                found.add(str(node.args[0].value))
        elif isinstance(node, ast.Attribute) and node.attr == "load" and isinstance(node.value, ast.Name) and node.value.id == "edgecv":
            found.add("edgecv.api")  # edgecv.load is api.load
    return {m for m in found if m == "edgecv" or m.startswith("edgecv.")}


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    for path in MODULES:
        layer(module_name(path))


def test_no_module_imports_a_higher_layer() -> None:
    bad = []
    seen_known = set()
    for path in MODULES:
        mod = module_name(path)
        # the package's __init__ is the public facade (re-exports load, stream and the result types, the loop's
        # lazily): it sits with the stream layer; importing the package itself (for __version__) is allowed
        # anywhere, Python has run it already
        own = layer("edgecv.stream") if mod == "edgecv" else layer(mod)
        for dep in sorted(imports(path) - {"edgecv"}):
            if layer(dep) > own:
                if (mod, dep) in KNOWN:
                    seen_known.add((mod, dep))
                    continue
                bad.append(f"{mod} (layer {layer(mod)}) imports {dep} (layer {layer(dep)})")
    assert not bad, "lower layer imports a higher one (move the shared piece down):\n" + "\n".join(bad)
    assert seen_known == KNOWN, f"fixed, remove from KNOWN: {sorted(KNOWN - seen_known)}"


@pytest.mark.parametrize(
    ("source", "want"),
    [
        ("def f():\n    from edgecv.bench.environment import collect_environment\n", {"edgecv.bench.environment"}),
        ("import edgecv\nx = edgecv.load\n", {"edgecv", "edgecv.api"}),
        ("from edgecv.engine import trt_compat\n", {"edgecv.engine.trt_compat"}),
        ("from ..bench import loop\n", {"edgecv.bench.loop"}),
        ("import importlib\nimportlib.import_module('edgecv.stream.sinks')\n", {"edgecv.stream.sinks"}),
    ],
)
def test_the_scanner_sees_function_level_relative_and_dynamic_imports(source: str, want: set[str]) -> None:
    """The scan itself: an import hidden in a function, a relative import or import_module is found."""
    probe = PACKAGE / "engine" / "_layer_probe.py"  # as if it were edgecv/engine/_layer_probe.py
    assert imports(probe, source) == want
