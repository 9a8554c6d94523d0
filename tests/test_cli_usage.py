"""Usage errors through the real CLI: one line, one `keelrun:` prefix, exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import clean_environ, run_keelrun

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
