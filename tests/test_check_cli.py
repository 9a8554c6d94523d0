"""`keelrun check` as a user runs it: a real process, its output and exit status."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, clean_environ, make_app, run_keelrun
from support.ports import four_digit_base, free_base, listening

PROCFILE = "web: python3 web.py\nrelease: ./migrate\nworker: python3 worker.py --queue=default\n"


def test_prints_the_formation(tmp_path: Path) -> None:
    base = four_digit_base(3)
    root = make_app(tmp_path, PROCFILE, env=f"A=1\nPORT={base}\n")
    r = run_keelrun("check", "-m", "web=2,worker=0", cwd=root)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == (
        "procfile   Procfile\n"
        "env files  .env (environment wins)\n"
        "config     (none)\n"
        f"base port  {base}\n"
        "\n"
        "TYPE    COUNT  PORTS      COMMAND\n"
        f"web     2      {base}-{base + 1}  python3 web.py\n"
        "worker  0      -          python3 worker.py --queue=default\n"
        "\n"
        f"release: ./migrate  (port {base + 100} is reserved for it: type k gets base + 100·k, "
        "k counting every type in Procfile order, release too)\n"
    )


def test_release_last_or_first(tmp_path: Path) -> None:
    root = make_app(tmp_path, "release: ./m\nweb: w\n")
    r = run_keelrun("check", "-p", "7000", cwd=root)
    assert r.returncode == 0, r.stderr
    assert "web   1      7100   w\n" in r.stdout
    assert r.stdout.endswith(
        "\nrelease: ./m  (the base port 7000 is reserved for it: type k gets base + 100·k, "
        "k counting every type in Procfile order, release too)\n"
    )
    (root / "Procfile").write_text("web: w\nrelease: ./m\n")
    r = run_keelrun("check", "-p", "7000", cwd=root)
    assert r.stdout.endswith("\nrelease: ./m\n")


def test_port_and_app_root_options(tmp_path: Path) -> None:
    root = make_app(tmp_path / "app", "web: a\n", keelrun_toml="[processes.web]\ncount = 3\n")
    base = four_digit_base(1, 3)
    r = run_keelrun("check", "-d", "app", "-p", str(base), "--env-override", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (0, "")
    assert "config     app/keelrun.toml\n" in r.stdout
    assert "env files  (none) (files win)\n" in r.stdout
    assert f"web   3      {base}-{base + 2}  a\n" in r.stdout
    assert root.is_dir()


def test_reports_every_error_and_exits_2(tmp_path: Path) -> None:
    root = make_app(
        tmp_path,
        "web: a\nweb: b\nworker x\n",
        env="GOOD=1\nnot valid\n",
        pyproject="[tool.keelrun]\ntimeout = 'soon'\n"
        "[tool.keelrun.processes.web]\nstop_signal = 'NOPE'\n",
    )
    r = run_keelrun("check", "-p", "http", cwd=root)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.splitlines() == [
        'keelrun: Procfile:2: duplicate process type "web" (first defined on line 1)',
        'keelrun: Procfile:3: expected `name: command`, got "worker x"',
        "keelrun: .env:2: cannot parse this line (expected KEY=value)",
        'keelrun: pyproject.toml: tool.keelrun.timeout: expected a number of seconds, got "soon"',
        'keelrun: --port: expected an integer, got "http"',
        'keelrun: pyproject.toml: tool.keelrun.processes.web.stop_signal: unknown signal "NOPE"',
    ]


def test_missing_procfile(tmp_path: Path) -> None:
    r = run_keelrun("check", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (2, "keelrun: Procfile: no such file\n")


def test_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    r = run_keelrun("check", "--bogus", cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("keelrun: ")


def test_the_demo_app_checks_clean() -> None:
    r = run_keelrun("check", "-d", "examples", cwd=REPO, env=clean_environ())
    assert r.returncode == 0, r.stderr
    assert "web     1      5000       python3 web.py" in r.stdout
    assert "release: python3 release.py" in r.stdout


def _counts(stdout: str) -> dict[str, str]:
    rows = stdout.split("TYPE ", 1)[1].splitlines()[1:]
    return {row.split()[0]: row.split()[1] for row in rows if row.strip() and ":" not in row}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["-m", "web=2", "-m", "worker=3"], {"web": "2", "worker": "3", "clock": "1"}),
        (["-m", "web=2,worker=3"], {"web": "2", "worker": "3", "clock": "1"}),
        (["--formation", "web=2", "-c", "worker=3"], {"web": "2", "worker": "3", "clock": "1"}),
        (["-m", "web=2", "-m", "web=4"], {"web": "4", "worker": "1", "clock": "1"}),
        # all=N sets the types that no -m names, whichever -m comes first.
        (["-m", "web=2", "-m", "all=0"], {"web": "2", "worker": "0", "clock": "0"}),
        (["-m", "all=3", "-m", "clock=0"], {"web": "3", "worker": "3", "clock": "0"}),
    ],
)
def test_repeated_formation_flags_merge_left_to_right(
    tmp_path: Path, flags: list[str], expected: dict[str, str]
) -> None:
    root = make_app(tmp_path, "web: a\nworker: b\nclock: c\n")
    r = run_keelrun("check", *flags, cwd=root)
    assert r.returncode == 0, r.stderr
    assert _counts(r.stdout) == expected


def test_repeated_formation_flags_report_every_bad_one(tmp_path: Path) -> None:
    root = make_app(tmp_path, "web: a\nworker: b\n")
    r = run_keelrun("check", "-m", "web=x", "-m", "worker=2", "-m", "nope=1", cwd=root)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        'keelrun: --formation: web: expected a count (0 or more), got "x"',
        'keelrun: --formation: no process type "nope" in the Procfile (types: web, worker)',
    ]


def test_a_continued_procfile_line_is_one_error(tmp_path: Path) -> None:
    procfile = (
        "web: gunicorn config.wsgi:application \\\n"
        "    --bind 0.0.0.0:$PORT \\\n"
        "    --workers 3 \\\n"
        "    --access-logfile -\n"
        "worker: celery -A config worker \\\n"
        "    --loglevel=info\n"
    )
    root = make_app(tmp_path, procfile)
    r = run_keelrun("check", cwd=root)
    assert r.returncode == 2
    continues = (
        "but a Procfile entry is one line: join them into one (or move the command into a script)"
    )
    assert r.stderr.splitlines() == [
        'keelrun: Procfile:1: the command of "web" ends in "\\" and continues on lines 2-4, '
        + continues,
        'keelrun: Procfile:5: the command of "worker" ends in "\\" and continues on line 6, '
        + continues,
    ]


def test_blank_before_the_colon_and_duplicates_say_what_to_do(tmp_path: Path) -> None:
    root = make_app(tmp_path, "web: a\nworker : b\n\nweb: c\n")
    r = run_keelrun("check", cwd=root)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        'keelrun: Procfile:2: blank between the process type "worker" and ":"; '
        'remove it ("worker:")',
        'keelrun: Procfile:4: duplicate process type "web" (first defined on line 1)',
    ]


def test_check_warns_of_shared_and_taken_ports(tmp_path: Path) -> None:
    base = free_base(3)
    root = make_app(tmp_path, "web: a\nworker: b\nclock: c\n")
    with listening("0.0.0.0", base + 200):
        r = run_keelrun("check", "-p", str(base), "-m", "web=102", cwd=root)
    assert r.returncode == 0, r.stderr
    assert f"web     102    {base}-{base + 101}" in r.stdout
    assert r.stderr.splitlines() == [
        f"keelrun: warning: web.101 and worker.1 both get port {base + 100}: type k's ports "
        "start at base + 100·k, so more than 100 instances of a type reach the next type's ports",
        f"keelrun: warning: port {base + 200} of clock.1 is already in use "
        f"(another process listens on 0.0.0.0:{base + 200})",
    ]
