"""Extract the names of TensorRT's Python API for one release from its pybind11 sources.

    git clone https://github.com/NVIDIA/TensorRT && cd TensorRT
    python scripts/trt_api_names.py --repo PATH/TO/TensorRT --tag v10.3.0 -o tests/trt_api/tensorrt-10.json

Reads ``python/src/**/*.cpp`` (the bindings: ``py::class_<...>(m, "Name")`` and ``py::enum_``
with their ``.def``/``.def_property*``/``.def_readwrite``/``.def_static``/``.value`` names) and the
pure-Python helpers of ``python/packaging/bindings_wheel/tensorrt/__init__.py`` at ``--tag``
(git show, no checkout). Writes ``{"version": ..., "classes": {"IExecutionContext": [...], ...},
"functions": [...]}`` (enum values in the order the bindings declare them; the fakes number them in that order, their names are what the tests check); the tests check the fakes' surfaces against these files.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path

_CLASS = re.compile(r"py::(class_|enum_)\s*<[^;]*?>\s*\(\s*\w+\s*,\s*\"(\w+)\"")
_MEMBER = re.compile(r"\.(def|def_property|def_property_readonly|def_readwrite|def_readonly|def_static|value)\(\s*\"(\w+)\"")
_PYFUNC = re.compile(r"^def (\w+)\(", re.MULTILINE)


def _show(repo: Path, tag: str, path: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "show", f"{tag}:{path}"], capture_output=True, text=True, check=True).stdout


def _files(repo: Path, tag: str) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "--name-only", tag, "python/src"], capture_output=True, text=True, check=True)
    return [p for p in out.stdout.split() if p.endswith(".cpp")]


def _statement(text: str, start: int) -> str:
    """From ``start`` to the ``;`` that ends the statement (outside parentheses, braces and string literals)."""
    depth, i, n = 0, start, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            if text[i - 1] == "R":  # raw string R"delim( ... )delim"
                delim = text[i + 1 : text.index("(", i)]
                i = text.index(")" + delim + '"', i) + len(delim) + 1
            else:
                i += 1
                while text[i] != '"':
                    i += 2 if text[i] == "\\" else 1
        elif c == "'":
            i = text.index("'", i + 2 if text[i + 1] == "\\" else i + 1)
        elif c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        elif c == ";" and depth == 0:
            return text[start:i]
        i += 1
    return text[start:]


def extract(repo: Path, tag: str) -> dict:
    classes: dict[str, list[str]] = {}
    enums: set[str] = set()
    for path in _files(repo, tag):
        text = re.sub(r"//[^\n]*", "", _show(repo, tag, path))
        for match in _CLASS.finditer(text):
            body = _statement(text, match.start())
            names = classes.setdefault(match[2], [])
            names += [m[2] for m in _MEMBER.finditer(body) if m[2] not in names]
            if match[1] == "enum_":
                enums.add(match[2])
    init = _show(repo, tag, "python/packaging/bindings_wheel/tensorrt/__init__.py")
    functions = sorted(set(_PYFUNC.findall(init)) - {f for f in _PYFUNC.findall(init) if f.startswith("_")})
    return {"version": tag.lstrip("v"), "source": f"NVIDIA/TensorRT {tag} python/src (pybind11)", "classes": {k: v if k in enums else sorted(v) for k, v in sorted(classes.items())},
            "functions": functions}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    data = extract(args.repo, args.tag)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{args.output}: {len(data['classes'])} classes, {sum(map(len, data['classes'].values()))} names, functions {data['functions']}")


if __name__ == "__main__":
    main()
