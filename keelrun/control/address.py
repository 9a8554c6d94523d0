"""Where a control socket lives: its own path, or a stand-in in a private runtime directory.

A socket path that is too long for a Unix socket, or a default socket whose
app root cannot be written (a root-owned WORKDIR, a read-only root file
system), is replaced by ``keelrun-<uid>/<hash>.sock`` in ``$XDG_RUNTIME_DIR``
or the temp dir, the hash taken of the path it stands in for. Server and
clients compute the same names, so a client finds the stand-in from the path
alone (README, "Control socket protocol").
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from keelrun.errors import RuntimeFailure

DEFAULT_NAME = ".keelrun.sock"
SUN_PATH_MAX = 107  # bytes of a Unix socket path on Linux, without the NUL


class UnsafeDirectory(RuntimeFailure):
    """A runtime directory that someone else owns or may write: never used."""


def fits(path: Path) -> bool:
    return len(os.fsencode(str(path))) <= SUN_PATH_MAX


def runtime_dirs(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The private directories a stand-in may live in, in the order they are tried:
    ``$XDG_RUNTIME_DIR/keelrun-<uid>``, then the temp dir's (``$TMPDIR`` or /tmp)."""
    env = os.environ if environ is None else environ
    bases: list[Path] = []
    for value in (env.get("XDG_RUNTIME_DIR"), _temp_dir(env)):
        if value and os.path.isabs(value):
            base = Path(os.path.normpath(value))
            if base not in bases:
                bases.append(base)
    name = f"keelrun-{os.getuid()}"
    return [base / name for base in bases]


def _temp_dir(env: Mapping[str, str]) -> str:
    # Not tempfile.gettempdir(): that imports much and writes a probe file.
    tmp = env.get("TMPDIR", "")
    return tmp if os.path.isabs(tmp) else "/tmp"


def stand_in_name(path: Path) -> str:
    import hashlib  # only when a stand-in is looked for: it costs a client 5 ms

    # The directory as the kernel sees it: a symlinked app root gets the same name.
    real = os.path.join(os.path.realpath(path.parent), path.name)
    return hashlib.sha256(os.fsencode(real)).hexdigest()[:24] + ".sock"


def stand_ins(
    path: Path, environ: Mapping[str, str] | None = None, existing: bool = False
) -> list[Path]:
    """Where a stand-in for ``path`` may be, in the order a server tries them;
    ``existing``: only in runtime directories that exist (what a client may find)."""
    dirs = runtime_dirs(environ)
    if existing:
        dirs = [d for d in dirs if os.path.isdir(d)]
        if not dirs:
            return []  # the usual case, and no hash to compute
    name = stand_in_name(path)
    return [d / name for d in dirs]


def private_dir(directory: Path) -> None:
    """Create ``directory`` with mode 0700, or check that an existing one is ours alone.

    Raises UnsafeDirectory when it belongs to another uid, is not a directory
    or is writable by group or others (a planted directory is never used),
    and OSError when it cannot be created.
    """
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    st = os.lstat(directory)
    uid = os.getuid()
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeDirectory(f"{directory}: is not a directory; refusing to put a socket there")
    if st.st_uid != uid:
        raise UnsafeDirectory(
            f"{directory}: owned by {owner_name(st.st_uid)}, not by keelrun's uid {uid}; "
            "refusing to put a socket there (remove it, or set --socket)"
        )
    if st.st_mode & 0o022:
        raise UnsafeDirectory(
            f"{directory}: writable by others (mode {stat.S_IMODE(st.st_mode):04o}); "
            "refusing to put a socket there"
        )


def owner_name(uid: int) -> str:
    """``uid 65534 (nobody)``, or just the number when it has no name."""
    import pwd

    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"
