"""The layout's rules (README "Design"), checked on the source so that they stay true."""

from __future__ import annotations

import ast
from pathlib import Path

KEELRUN = Path(__file__).resolve().parent.parent / "keelrun"


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_supervisor_never_imports_the_control_socket() -> None:
    offenders = {
        str(path.relative_to(KEELRUN)): sorted(
            m for m in _imports(path) if m.startswith("keelrun.control")
        )
        for path in (KEELRUN / "supervisor").glob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_rule_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from keelrun.control.server import ControlServer\n")
    assert "keelrun.control.server" in _imports(sample)


def test_only_the_start_wiring_knows_both_sides() -> None:
    both = [
        str(path.relative_to(KEELRUN))
        for path in KEELRUN.rglob("*.py")
        if any(m.startswith("keelrun.control.server") for m in _imports(path))
        and any(m.startswith("keelrun.supervisor.supervisor") for m in _imports(path))
    ]
    assert both == ["start.py"]


MAX_LINES = 450  # README "Design": modules by concern, each small enough to read at once


def test_no_module_is_over_450_lines() -> None:
    long = {
        str(path.relative_to(KEELRUN)): n
        for path in KEELRUN.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
