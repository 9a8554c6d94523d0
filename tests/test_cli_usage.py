"""Usage errors through the real CLI: one line, one `keelrun:` prefix, exit status 2."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import clean_environ, run_keelrun
from support import otheruid
from support.procs import poll_until

from keelrun.config.options import CLIENT_COMMANDS, INPUT_COMMANDS

USAGE_ERRORS = [
    (["bogus"], "keelrun: No such command 'bogus'."),
    (["--bogus"], "keelrun: No such option '--bogus'."),
    (["check", "--bogus"], "keelrun: check: No such option '--bogus'."),
    (["check", "-p"], "keelrun: check: Option '-p' requires an argument."),
    (["start", "-m"], "keelrun: start: Option '-m' requires an argument."),
    (["scale"], "keelrun: scale: Missing argument 'TYPE=N|+N|-N...'."),
    (
        ["export"],
        "keelrun: export: Missing argument 'FORMAT'. Choose from: systemd, supervisord, kubernetes",
    ),
    (["export", "bogus", "out"], "keelrun: export: Invalid value for 'FORMAT': 'bogus' is not"),
    (["ps", "extra"], "keelrun: ps: Got unexpected extra argument (extra)"),
    (["run"], "keelrun: run: Missing argument 'COMMAND...'."),
    (["signal", "TERM"], "keelrun: signal: Missing argument 'NAME...'."),
    (["logs", "--color=yes"], "keelrun: logs: Option '--color' does not take a value."),
    (["start", "--bo\ngus"], "keelrun: start: No such option '--bo"),
]


@pytest.mark.parametrize(
    ("args", "start"), USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS]
)
def test_usage_error_is_one_line_with_one_prefix(
    tmp_path: Path, args: list[str], start: str
) -> None:
    r = run_keelrun(*args, cwd=tmp_path)
    assert r.returncode == 2, r
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(start), lines[0]
    assert not lines[0].startswith("keelrun: keelrun"), lines[0]


def test_no_command_prints_the_help_and_exits_2(tmp_path: Path) -> None:
    r = run_keelrun(cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("Usage: keelrun [OPTIONS] COMMAND [ARGS]...\n")
    assert "keelrun: " not in r.stderr.splitlines()[0]
    assert "  check " in r.stderr and "  start " in r.stderr


def test_help_and_version_exit_0(tmp_path: Path) -> None:
    for args in (["--help"], ["check", "-h"], ["--version"]):
        r = run_keelrun(*args, cwd=tmp_path)
        assert (r.returncode, r.stderr) == (0, ""), args
        assert r.stdout


COMMANDS = (*INPUT_COMMANDS, *CLIENT_COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_and_version(tmp_path: Path, command: str) -> None:
    """In an empty directory: the flags answer before any input is read."""
    from keelrun import __version__

    r = run_keelrun(command, "--version", cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"keelrun, version {__version__}\n", "")
    r = run_keelrun(command, "--help", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout.startswith(f"Usage: keelrun {command} ")


def test_after_run_s_command_version_is_the_command_s(tmp_path: Path) -> None:
    r = run_keelrun("run", "--", "sh", "-c", 'echo "$0"', "--version", cwd=tmp_path)
    assert (r.returncode, r.stdout) == (0, "--version\n")


@pytest.mark.parametrize("command", ["check", "start", "ps"])
def test_a_current_directory_that_is_gone_is_one_line(tmp_path: Path, command: str) -> None:
    script = 'mkdir gone && cd gone && rmdir ../gone && exec "$@"'
    r = subprocess.run(
        ["sh", "-c", script, "sh", sys.executable, "-m", "keelrun", command],
        cwd=tmp_path,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (r.returncode, r.stderr) == (
        1,
        "keelrun: the current directory no longer exists: cd to one that does\n",
    )


def _sh(tmp_path: Path, script: str, *args: str, timeout: float = 30):
    return subprocess.run(
        ["sh", "-c", script, "sh", sys.executable, "-m", "keelrun", *args],
        cwd=tmp_path,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_nul_or_a_fifo_in_an_input_file_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_bytes(b"web: echo a\0b\n")
    r = run_keelrun("check", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (2, "keelrun: Procfile:1: contains a NUL character\n")
    (tmp_path / "Procfile").write_text("web: echo a\n")
    os.mkfifo(tmp_path / ".env")  # would block a plain read for ever
    r = run_keelrun("check", cwd=tmp_path, timeout=10)
    assert (r.returncode, r.stderr) == (2, "keelrun: .env: is not a regular file\n")


def test_closed_or_full_standard_streams_are_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("web: echo a\n")
    r = _sh(tmp_path, 'exec "$@" >/dev/full', "check")
    assert (r.returncode, r.stderr) == (1, "keelrun: cannot write: No space left on device\n")
    r = _sh(tmp_path, 'exec "$@" >&-', "check")
    assert (r.returncode, r.stderr) == (0, "")
    (tmp_path / "Procfile").write_text("web: a\nweb: b\n")
    for redirect in ("2>&-", "2>/dev/full"):
        r = _sh(tmp_path, f'exec "$@" {redirect}', "check")
        assert r.returncode == 2, (redirect, r.stderr)


def test_with_stdin_closed_the_guardian_still_holds(tmp_path: Path) -> None:
    """A pipe opened with fd 0 free would land on 0 and be replaced by /dev/null in
    the guardian: it would clean up at once and guard nothing."""
    token = f"{os.getpid() % 10000 + 10000}"  # the instances' sleep, to find them by
    (tmp_path / "Procfile").write_text(f"web: exec sleep {token}.5\n")
    p = subprocess.Popen(
        ["sh", "-c", 'exec "$@" <&-', "sh", sys.executable, "-m", "keelrun", "start"],
        cwd=tmp_path,
        env=clean_environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert p.stdout is not None
        for line in p.stdout:
            if b"started web.1" in line:
                break

        def sleepers() -> list[int]:
            return [
                int(pid)
                for pid in os.listdir("/proc")
                if pid.isdigit() and _cmdline(pid) == f"sleep\0{token}.5\0"
            ]

        assert sleepers()
        # With the lifeline on fd 0 the guardian cleaned up at once, killing the run's
        # processes about a second later: nothing may end in this window.
        deadline = time.monotonic() + 3
        seen = b""
        while (left := deadline - time.monotonic()) > 0:
            if select.select([p.stdout], [], [], left)[0]:
                chunk = os.read(p.stdout.fileno(), 65536)
                if not chunk:
                    break
                seen += chunk
        assert b"web.1 (pid" not in seen, seen  # no exit of the instance
        p.kill()  # SIGKILL: only the guardian (or the cgroup) can end the instance now
        p.wait(10)
        assert poll_until(lambda: not sleepers(), 10), sleepers()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read()
    except OSError:
        return ""


def test_export_to_an_empty_dir_argument_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("web: echo a\n")
    r = run_keelrun("export", "systemd", "", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (
        2,
        "keelrun: DIR: empty path: name the directory to write to\n",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Procfile"]


@pytest.mark.skipif(otheruid.available() is not None, reason=str(otheruid.available()))
@pytest.mark.parametrize("command", [["check"], ["run", "true"], ["start"]])
def test_an_app_root_keelrun_may_not_read_is_an_input_error(command: list[str]) -> None:
    shared = otheruid.shared_dir("keelrun-closed-")
    try:
        app = shared / "app"
        app.mkdir()
        (app / "Procfile").write_text("web: echo a\n")
        app.chmod(0o700)  # root's: uid 65534 may not look inside
        r = subprocess.run(
            [*otheruid.keelrun(), command[0], "-d", str(app), *command[1:]],
            cwd=shared,
            env=otheruid.env(clean_environ()),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 2, r.stderr
        assert r.stderr.endswith(": cannot read: Permission denied\n"), r.stderr
        assert "Traceback" not in r.stderr
    finally:
        shutil.rmtree(shared, ignore_errors=True)
