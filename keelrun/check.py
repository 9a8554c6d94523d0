"""`keelrun check`: validate every input and show the formation it gives."""

from __future__ import annotations

import sys
from typing import TextIO

from keelrun.config import Overrides, inspect
from keelrun.formation import port_range
from keelrun.settings import Settings


def check_command(overrides: Overrides, out: TextIO | None = None) -> int:
    """Print the formation and return 0; InputErrors (every problem found) propagate.

    Warnings (shared or taken ports) go to stderr and do not change the status.
    """
    out = out or sys.stdout
    loaded = inspect(overrides)
    s = loaded.settings
    out.write(f"procfile   {loaded.procfile_label}\n")
    out.write(f"env files  {', '.join(loaded.env_labels) or '(none)'}")
    out.write(" (environment wins)\n" if not s.env_override else " (files win)\n")
    out.write(f"config     {loaded.config_label or '(none)'}\n")
    out.write(f"base port  {s.port}\n\n")

    rows = [("TYPE", "COUNT", "PORTS", "COMMAND")]
    for t in s.types:
        rows.append((t.name, str(t.count), port_range(t.base_port, t.count), t.command))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        out.write("  ".join([*cells, row[3]]).rstrip() + "\n")
    if s.release is not None:
        out.write(f"\nrelease: {s.release.command}{_reserved_port(s)}\n")
    out.flush()

    from keelrun.preflight import formation_warnings, taken_port_warnings, warn

    counts = {t.name: t.count for t in s.types}
    warn(formation_warnings(s, counts) + taken_port_warnings(s, counts))
    return 0


def _reserved_port(s: Settings) -> str:
    """Why a port is missing from the table when release sits between other types."""
    assert s.release is not None
    if not s.types or s.release.index > max(t.index for t in s.types):
        return ""
    k = s.release.index
    port = f"the base port {s.port}" if k == 0 else f"port {s.release.base_port}"
    return (
        f"  ({port} is reserved for it: type k gets base + 100·k, "
        "k counting every type in Procfile order, release too)"
    )
