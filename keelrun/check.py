"""`keelrun check`: validate every input and show the formation it gives."""

from __future__ import annotations

import sys
from typing import TextIO

from keelrun.config import Overrides, inspect
from keelrun.formation import port_range


def check_command(overrides: Overrides, out: TextIO | None = None) -> int:
    """Print the formation and return 0; InputErrors (every problem found) propagate."""
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
        out.write(f"\nrelease: {s.release.command}\n")
    out.flush()
    return 0
