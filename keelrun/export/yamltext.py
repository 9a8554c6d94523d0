"""A minimal YAML emitter for the Kubernetes manifests (PyYAML is not a runtime dependency).

Block mappings and sequences; every string is a double-quoted scalar with
everything outside YAML's printable set escaped, so the output parses back to
exactly the data (checked against PyYAML in the tests).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

Data = Mapping[str, "Data"] | Sequence["Data"] | str | int | bool | None

_PLAIN_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_./-]*")
# Plain scalars YAML 1.1 readers turn into booleans or null.
_RESERVED = frozenset(["y", "n", "yes", "no", "on", "off", "true", "false", "null"])
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


def _printable(ch: str) -> bool:
    o = ord(ch)
    if 0x20 <= o <= 0x7E:
        return True
    # NEL, LS, PS are line breaks in YAML; BOM and surrogates are not characters.
    if o in (0x85, 0x2028, 0x2029, 0xFEFF):
        return False
    return 0xA0 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD or 0x10000 <= o <= 0x10FFFF


def quote(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif _printable(ch):
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _key(key: str) -> str:
    if _PLAIN_KEY.fullmatch(key) and key.lower() not in _RESERVED:
        return key
    return quote(key)


def _scalar(value: Data) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, Mapping):
        return "{}"
    return "[]"


def _is_collection(value: Data) -> bool:
    return isinstance(value, Mapping | list | tuple) and len(value) > 0


def _lines(value: Data, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            if _is_collection(v):
                lines.append(f"{pad}{_key(k)}:")
                lines.extend(_lines(v, indent + 2))
            else:
                lines.append(f"{pad}{_key(k)}: {_scalar(v)}")
    else:
        assert isinstance(value, list | tuple)
        for item in value:
            if _is_collection(item):
                nested = _lines(item, indent + 2)
                # "- " takes the place of the first nested line's indentation.
                lines.append(f"{pad}- {nested[0][indent + 2 :]}")
                lines.extend(nested[1:])
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    return lines


def dump(document: Mapping[str, Data]) -> str:
    """One YAML document (a mapping) as text ending in a newline."""
    if not document:
        return "{}\n"
    return "\n".join(_lines(document, 0)) + "\n"
