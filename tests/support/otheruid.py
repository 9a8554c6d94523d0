"""Running keelrun, its clients or a made-up server as uid 65534, with setpriv.

The test interpreter and the checkout may live where uid 65534 cannot read
(under /root), so a system python3 runs a copy of keelrun and its runtime
dependencies in a directory that everyone can read.
"""

from __future__ import annotations

import atexit
import importlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAKE_SERVER = Path(__file__).resolve().parent / "fake_server.py"
NOBODY = 65534
SETPRIV = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
DEPENDENCIES = ("click", "structlog", "psutil", "dotenv")

_site: dict[str, Path | str] = {}


def available() -> str | None:
    """Why uid 65534 cannot be used here, or None."""
    if os.getuid() != 0:
        return "setpriv to another uid needs root"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is missing"
    if _system_python() is None:
        return "no python3 >= 3.11 that uid 65534 may run"
    return None


def _system_python() -> str | None:
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"):
        if not os.path.exists(candidate):
            continue
        check = "import sys; sys.exit(sys.version_info < (3, 11))"
        r = subprocess.run([*SETPRIV, candidate, "-c", check], capture_output=True, timeout=10)
        if r.returncode == 0:
            return candidate
    return None


def site() -> tuple[str, Path]:
    """(python, directory to put on PYTHONPATH): built once per test session."""
    if not _site:
        python = _system_python()
        assert python is not None, available()
        where = Path(tempfile.mkdtemp(prefix="keelrun-site-"))
        shutil.copytree(REPO / "keelrun", where / "keelrun", ignore=_no_cache)
        for name in DEPENDENCIES:
            module = importlib.import_module(name)
            assert module.__file__ is not None
            shutil.copytree(Path(module.__file__).parent, where / name, ignore=_no_cache)
        shutil.copy(FAKE_SERVER, where / FAKE_SERVER.name)
        for path in (where, *where.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        _site.update(python=python, where=where)
        atexit.register(cleanup)
    return str(_site["python"]), Path(_site["where"])


def _no_cache(_dir: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__"]


def env(base: dict[str, str]) -> dict[str, str]:
    """``base`` with the copied packages as the only import path."""
    _python, where = site()
    return {**base, "PYTHONPATH": str(where)}


def keelrun() -> list[str]:
    """The command line of `python -m keelrun` as uid 65534 (with ``env()``)."""
    python, _where = site()
    return [*SETPRIV, python, "-m", "keelrun"]


def fake_server(*, as_nobody: bool) -> list[str]:
    """The command line of fake_server.py, as uid 65534 or as this test's uid."""
    python, where = site()
    return [*(SETPRIV if as_nobody else []), python, str(where / FAKE_SERVER.name)]


def shared_dir(prefix: str) -> Path:
    """A directory that every user can reach (mode 0755), owned by root."""
    where = Path(tempfile.mkdtemp(prefix=prefix))
    where.chmod(0o755)
    return where


def cleanup() -> None:
    if _site:
        shutil.rmtree(_site["where"], ignore_errors=True)
        _site.clear()
