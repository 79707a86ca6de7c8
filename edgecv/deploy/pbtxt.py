"""Protobuf text format (what Triton's ``config.pbtxt`` is) from plain Python values.

Values map to text format as follows: ``dict`` -> a message ``{ ... }``; a list of dicts -> the
message field repeated; a list of scalars -> ``field: [a, b]``; :class:`Enum` -> a bare enum name;
:class:`Map` -> a protobuf map (``field { key: ... value: ... }`` per entry); ``str`` -> a quoted,
escaped string; ``bool`` -> ``true``/``false``. Keys keep their order, so the output is stable.
Nothing here knows Triton: :mod:`edgecv.deploy.triton` builds the values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Enum:
    """An enum value, written bare: ``Enum("KIND_GPU")`` -> ``KIND_GPU``."""

    name: str


class Map(dict):  # type: ignore[type-arg]
    """A protobuf ``map<K, V>`` field: one ``{ key: K value: V }`` entry per item."""


def quote(text: str) -> str:
    """A text-format string literal (UTF-8 kept as is; quotes, backslashes and control characters escaped)."""
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _scalar(value: Any) -> str:
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return quote(value)
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a text-format scalar")


def dumps(message: Mapping[str, Any], indent: int = 0) -> str:
    """``message`` as protobuf text format (fields with value None are left out)."""
    pad = "  " * indent
    lines: list[str] = []
    for key, value in message.items():
        if value is None:
            continue
        if isinstance(value, Map):
            for k, v in value.items():
                entry = {"key": k, "value": v}
                lines.append(f"{pad}{key} {{\n{dumps(entry, indent + 1)}{pad}}}")
        elif isinstance(value, Mapping):
            lines.append(f"{pad}{key} {{\n{dumps(value, indent + 1)}{pad}}}")
        elif isinstance(value, (list, tuple)):
            if value and all(isinstance(v, Mapping) for v in value):
                for item in value:
                    lines.append(f"{pad}{key} {{\n{dumps(item, indent + 1)}{pad}}}")
            elif value:
                lines.append(f"{pad}{key}: [ {', '.join(_scalar(v) for v in value)} ]")
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return "".join(line + "\n" for line in lines)
