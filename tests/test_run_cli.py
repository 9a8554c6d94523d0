"""`keelrun run`: a real command in the app's environment, everything passed through."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
from pathlib import Path

from conftest import clean_environ, make_app, run_keelrun

KEELRUN = [sys.executable, "-m", "keelrun"]


def py(code: str) -> list[str]:
    return ["python3", "-c", code]


def test_exit_status_passes_through(app: Path) -> None:
    assert run_keelrun("run", "sh", "-c", "exit 7", cwd=app).returncode == 7
    assert run_keelrun("run", "--", "true", cwd=app).returncode == 0


def test_death_by_signal_is_128_plus_n_for_the_shell(app: Path) -> None:
    script = f'{sys.executable} -m keelrun run sh -c "kill -TERM \\$\\$"; echo "status=$?"'
    r = subprocess.run(
        ["sh", "-c", script],
        cwd=app,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.stdout == "status=143\n"


def test_sigterm_reaches_the_command(app: Path) -> None:
    code = (
        "import signal, sys\n"
        "signal.signal(signal.SIGTERM, lambda *a: (print('got TERM', flush=True), sys.exit(3)))\n"
        "print('ready', flush=True)\n"
        "signal.pause()\n"
    )
    p = subprocess.Popen(
        [*KEELRUN, "run", *py(code)],
        cwd=app,
        env=clean_environ(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        assert p.stdout.readline() == "ready\n"
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 3
        assert p.stdout.read() == "got TERM\n"
    finally:
        p.kill()
        p.wait()


def test_stdin_passes_through(app: Path) -> None:
    r = run_keelrun(
        "run", *py("import sys; print(sys.stdin.read().upper())"), cwd=app, input="hello\n"
    )
    assert (r.returncode, r.stdout) == (0, "HELLO\n\n")


def test_terminal_passes_through(app: Path) -> None:
    """An interactive program sees a terminal on stdin and stdout."""
    main, child = pty.openpty()
    code = "import os; print(os.isatty(0), os.isatty(1), input('> ').upper())"
    p = subprocess.Popen(
        [*KEELRUN, "run", *py(code)],
        cwd=app,
        env=clean_environ(),
        stdin=child,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    try:
        seen = b""
        while b"> " not in seen:
            assert select.select([main], [], [], 20)[0], seen
            seen += os.read(main, 1024)
        os.write(main, b"typed\n")
        assert p.wait(timeout=20) == 0
        while b"TYPED" not in seen:
            assert select.select([main], [], [], 20)[0], seen
            seen += os.read(main, 1024)
        assert b"True True TYPED" in seen
    finally:
        p.kill()
        p.wait()
        os.close(main)


def test_environment_and_precedence(tmp_path: Path) -> None:
    root = make_app(tmp_path / "app", "web: a\n", env="A=file\nB=file\nPORT=6000\n")
    show = (
        "import os; print(*[os.environ.get(k) for k in ('A', 'B', 'PORT', 'PS', 'DYNO')],"
        " os.getcwd())"
    )
    env = clean_environ(A="real")
    # No Procfile, no .env there: the real environment and the default port.
    r = run_keelrun("run", *py(show), cwd=tmp_path, env=env)
    assert r.stdout.split() == ["real", "None", "5000", "run.1", "run.1", str(tmp_path)]
    r = run_keelrun("run", "-d", "app", *py(show), cwd=tmp_path, env=env)
    assert r.stdout.split() == ["real", "file", "6000", "run.1", "run.1", str(root)]
    r = run_keelrun(
        "run", "-d", "app", "--env-override", "-p", "7000", *py(show), cwd=tmp_path, env=env
    )
    assert r.stdout.split() == ["file", "file", "7000", "run.1", "run.1", str(root)]


def test_options_after_the_command_belong_to_it(app: Path) -> None:
    r = run_keelrun("run", *py("import sys; print(sys.argv[1:])"), "-e", "x", "--", "-p", cwd=app)
    assert (r.returncode, r.stdout) == (0, "['-e', 'x', '--', '-p']\n")


def test_command_not_found_is_127(app: Path) -> None:
    r = run_keelrun("run", "no-such-command-keelrun", cwd=app)
    assert (r.returncode, r.stderr) == (
        127,
        "keelrun: run: no-such-command-keelrun: command not found\n",
    )


def test_not_executable_is_126(app: Path) -> None:
    (app / "script.sh").write_text("#!/bin/sh\necho hi\n")
    r = run_keelrun("run", "./script.sh", cwd=app)
    assert (r.returncode, r.stderr) == (126, "keelrun: run: ./script.sh: permission denied\n")


def test_sigpipe_is_default_again_in_the_command(app: Path) -> None:
    # Python ignores SIGPIPE, and an ignored signal survives exec.
    r = run_keelrun("run", "grep", "SigIgn", "/proc/self/status", cwd=app)
    ignored = int(r.stdout.split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))


def test_procfile_optional_but_must_be_valid(tmp_path: Path) -> None:
    assert run_keelrun("run", "true", cwd=tmp_path).returncode == 0
    (tmp_path / "Procfile").write_text("web a\n")
    r = run_keelrun("run", "true", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (
        2,
        'keelrun: Procfile:1: expected `name: command`, got "web a"\n',
    )
