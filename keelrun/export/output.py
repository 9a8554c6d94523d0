"""Writing the exported files into DIR.

keelrun overwrites only the files it generates (each replaced atomically) and
leaves everything else in DIR alone. Files holding .env values are 0600.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from keelrun.errors import InputError

PUBLIC_MODE = 0o644
SECRET_MODE = 0o600


@dataclass(frozen=True, slots=True)
class OutputFile:
    name: str  # file name inside DIR
    text: str
    mode: int = PUBLIC_MODE


def prepare_directory(directory: str) -> Path:
    """DIR as an absolute path, created if missing; an input error if it cannot be."""
    path = Path(directory).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise InputError(directory, "exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(directory, f"cannot create directory: {e.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(directory, "directory is not writable")
    return path


def write_files(directory: Path, files: list[OutputFile]) -> list[Path]:
    """Write every file (temp file + rename, so a reader never sees half a file)."""
    written: list[Path] = []
    for f in files:
        target = directory / f.name
        if target.is_dir():
            raise InputError(str(target), "is a directory; cannot write the exported file")
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{f.name}.", dir=directory)
        except OSError as e:
            raise InputError(str(target), f"cannot write: {e.strerror}") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(f.text)
            os.chmod(tmp, f.mode)
            os.replace(tmp, target)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise InputError(str(target), f"cannot write: {e.strerror}") from None
        written.append(target)
    return written
