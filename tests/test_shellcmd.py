"""Which commands end in `exec` (read as the shell reads them): the app is the instance."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import make_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keelrun.supervisor.shellcmd import exec_form

DASH = shutil.which("dash")
needs_dash = pytest.mark.skipif(DASH is None, reason="dash not installed (Debian's /bin/sh)")

EXECD = [
    # (command, what it becomes)
    ("python3 web.py", "exec python3 web.py"),
    ("gunicorn app:app --bind 0.0.0.0:$PORT", "exec gunicorn app:app --bind 0.0.0.0:$PORT"),
    ("sleep 1 > /dev/null 2>&1", "exec sleep 1 > /dev/null 2>&1"),
    ("./bin/worker --queue=default", "exec ./bin/worker --queue=default"),
    # Operators inside quotes, escapes, expansions and comments are words, not operators.
    (
        'python3 -c "import signal,time; time.sleep(1)"',
        'exec python3 -c "import signal,time; time.sleep(1)"',
    ),
    ("curl 'https://x?a=1&b=2'", "exec curl 'https://x?a=1&b=2'"),
    ("prog a\\;b a\\&\\&b a\\|b", "exec prog a\\;b a\\&\\&b a\\|b"),
    ("prog $(echo a; echo b | tr b c)", "exec prog $(echo a; echo b | tr b c)"),
    ("prog `echo a; echo b`", "exec prog `echo a; echo b`"),
    ('prog "${X:-a;b|c}" $((1 + (2 * 3)))', 'exec prog "${X:-a;b|c}" $((1 + (2 * 3)))'),
    ("prog arg # a comment; with & operators |", "exec prog arg # a comment; with & operators |"),
    ("prog a#b;", "exec prog a#b;"),
    ("prog <input 3>&1 1>&2 2>&3", "exec prog <input 3>&1 1>&2 2>&3"),
    ("prog <<EOF\nline; & |\nEOF", "exec prog <<EOF\nline; & |\nEOF"),
    ("prog \\\n  --continued", "exec prog \\\n  --continued"),
    ("'quoted' arg", "exec 'quoted' arg"),
    ('"$HOME/bin/app" run', 'exec "$HOME/bin/app" run'),
    ("~/bin/app", "exec ~/bin/app"),
    # Leading assignments and redirections stay before `exec`.
    ("DJANGO_SETTINGS_MODULE=x.prod gunicorn x", "DJANGO_SETTINGS_MODULE=x.prod exec gunicorn x"),
    ('A=1 B="x y" C=$(date) prog', 'A=1 B="x y" C=$(date) exec prog'),
    ("2>/dev/null A=1 prog", "2>/dev/null A=1 exec prog"),
    # The last simple command of a ;/&&/|| list.
    ("cd backend && bundle exec puma", "cd backend && exec bundle exec puma"),
    (
        "python manage.py migrate && gunicorn app.wsgi",
        "python manage.py migrate && exec gunicorn app.wsgi",
    ),
    ("A=1 celery -A proj worker", "A=1 exec celery -A proj worker"),
    ("set -e; ulimit -n 4096; prog", "set -e; ulimit -n 4096; exec prog"),
    ("a || b && c", "a || b && exec c"),
    ("a &&\n  b", "a &&\n  exec b"),
    ("make 2>&1 | tail -5 && node server.js", "make 2>&1 | tail -5 && exec node server.js"),
    ("a |\n b; c", "a |\n b; exec c"),
    ("a\n\nb", "a\n\nexec b"),
]

LEFT_AS_WRITTEN = [
    "echo $$; sleep 1 &",  # a background job
    "sleep 1 & sleep 2",
    "a | b",
    "a |& b",
    "prog &> log",  # dash: a background job, then a redirection
    "prog 2>&1 | tee log",
    "a; b | c",
    "a |",
    "(sleep 1)",
    "{ echo a; }",
    "if true; then x; fi",
    "while true; do x; done",
    "for i in 1 2; do x; done",
    "case $X in a) x;; esac",
    "! prog",
    "[[ -f x ]] && prog",
    "f() { prog; }; f",
    "time prog",
    # Builtins and keywords as the last command word.
    "exec sleep 1",
    "cd /tmp",
    "ulimit -n 64",
    "echo hi",
    "printf '%s' x",
    "true",
    "trap '' TERM; sleep 1",  # an EXIT or TERM trap would be skipped by exec
    ". venv/bin/activate && python app.py",  # the file may define a function `python`
    "source env.sh; prog",
    "eval x; prog",
    '"$SETUP" x; prog',  # the word may be `eval` once expanded
    # Command words whose meaning is only known when the shell expands them.
    "$CMD arg",
    '"$CMD" arg',
    "`which prog` arg",
    "*.sh",
    "{a,b} c",
    # Nothing to exec.
    "FOO=1",
    "A=1 >log",
    "A+=1 prog",
    "-x prog",
    "'' prog",
    # Not read with certainty, or a syntax error: the shell decides.
    "prog 'unterminated",
    'prog "unterminated',
    "prog $(unterminated",
    "prog \\",
    "a;;b",
    "a; ;b",
    "a &&",
    "; a",
    "prog <<EOF",
    "prog <<<word",
    "prog $'ansi c'",
    "prog $(case x in a) y;; esac)",
    "prog \"${X:-'q'}\"",
    "prog <(cat x)",
    "arr=(1 2); prog",
]


@pytest.mark.parametrize(("command", "expected"), EXECD)
def test_simple_commands_and_the_last_of_a_list_are_execd(command: str, expected: str) -> None:
    assert exec_form(command) == expected


@pytest.mark.parametrize("command", LEFT_AS_WRITTEN)
def test_everything_else_is_left_to_the_shell(command: str) -> None:
    assert exec_form(command) == command


# ---- property: exec changes nothing the command does --------------------------------

# A program (an absolute path: no builtin) that shows its arguments, two variables and
# its exit status.
PROGRAM = (
    '/bin/sh -c \'printf "<%s>" "$0" "$@"; printf " A=%s B=%s\\n" "${A-unset}"'
    ' "${B-unset}"; exit 3\' prog'
)
ARG_TEXT = st.text(alphabet="ab $;&|()<>#'\"\\`{}*~=-/\t", min_size=1, max_size=8)


def _single(s: str) -> str:
    return shlex.quote(s)


def _double(s: str) -> str:
    return '"' + "".join("\\" + c if c in '"$`\\' else c for c in s) + '"'


def _escaped(s: str) -> str:
    return "".join("\\" + c for c in s)


quoted_args = st.builds(lambda f, s: f(s), st.sampled_from([_single, _double, _escaped]), ARG_TEXT)
expansions = st.sampled_from(
    [
        "$A",
        '"$A"',
        '"${A:-d e}"',
        "${B-x}",
        "$(printf %s 'x;y')",
        "\"$(echo 'a&b')\"",
        "`echo z`",
        "$((2 + 3))",
        "*.txt",
        "a#b",
    ]
)
assignments = st.builds(
    lambda name, value: f"{name}={value}", st.sampled_from(["A", "B"]), quoted_args | expansions
)
redirections = st.sampled_from(["2>&1", "1>&2", "</dev/null", "3>&1"])
preludes = st.sampled_from(
    [
        "",
        "true && ",
        "false || ",
        "cd . && ",
        "A=5; ",
        "printf pre; ",
        "B=6\n",
        "true &&\n ",
        "printf 'b\\na' | sort && ",
    ]
)


@st.composite
def simple_commands(draw: st.DrawFn) -> str:
    words = draw(st.lists(assignments | redirections, max_size=3))
    words.append(PROGRAM)
    words += draw(st.lists(quoted_args | expansions | redirections, max_size=4))
    tail = draw(st.sampled_from(["", " # tail; & | $(x", ";"]))
    return draw(preludes) + " ".join(words) + tail


DASH_PREFIX = re.compile(r"^\S*dash: \d+: (exec: )?", re.MULTILINE)
# Generated commands redirect into files: as root they run as nobody, so that
# none can write outside its own scratch directory.
NOBODY = (
    ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
)
SHOW = "#!/bin/sh\nprintf '<%s>' \"$0\" \"$@\"; printf '\\n'\n"


def run_dash(command: str, user: list[str] = NOBODY) -> tuple[int, str, str]:
    """Run ``command`` under dash in a fresh directory holding `f.txt` and `./show`."""
    assert DASH is not None
    with tempfile.TemporaryDirectory() as cwd:
        os.chmod(cwd, 0o777)
        Path(cwd, "f.txt").write_text("")
        Path(cwd, "show").write_text(SHOW)
        os.chmod(Path(cwd, "show"), 0o755)
        r = subprocess.run(
            [*user, DASH, "-c", command],
            cwd=cwd,
            env={"PATH": "/usr/bin:/bin"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=10,
        )
    # Messages differ only in their prefix: `exec: x: not found`, and the line number.
    return r.returncode, DASH_PREFIX.sub("", r.stdout), DASH_PREFIX.sub("", r.stderr)


@needs_dash
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(simple_commands())
def test_generated_simple_commands_are_execd_and_do_the_same(command: str) -> None:
    execd = exec_form(command)
    assert execd != command, "a simple command ending in a program is exec'd"
    assert run_dash(execd, []) == run_dash(command, [])  # they write no file: no need for nobody


FRAGMENTS = st.sampled_from(
    [
        "./show ",
        "a",
        " ",
        "'",
        '"',
        "\\",
        "$",
        "$(",
        "${",
        "(",
        ")",
        ";",
        "&",
        "&&",
        "|",
        "||",
        "<",
        ">",
        "2>&1",
        "#",
        "`",
        "{",
        "}",
        "*",
        "A=",
        "\n",
        "<<E\nE\n",
    ]
)


@needs_dash
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(FRAGMENTS, max_size=12).map("".join).filter(lambda c: "$$" not in c))  # a pid
def test_whatever_exec_form_changes_still_does_the_same(command: str) -> None:
    execd = exec_form(command)
    if execd != command:
        assert run_dash(execd) == run_dash(command)


# ---- real processes under `keelrun start` --------------------------------------------

PY = sys.executable
# Prints its pid, then on SIGTERM takes its time to stop and exits 7.
APP = """\
import os, signal, sys, time
def stop(*_):
    print("stopping", flush=True)
    time.sleep(0.3)
    print("stopped", flush=True)
    sys.exit(7)
signal.signal(signal.SIGTERM, stop)
print("pid", os.getpid(), os.environ.get("VAR", "-"), *sys.argv[1:], flush=True)
while True:
    time.sleep(1)
"""
ONE_LINE_APP = (
    "import os,signal,sys,time; signal.signal(signal.SIGTERM, lambda *a: (print('stopping',"
    " flush=True), time.sleep(0.3), print('stopped', flush=True), sys.exit(7)));"
    " print('pid', os.getpid(), flush=True); [time.sleep(1) for _ in iter(int, 1)]"
)

COMMANDS = {
    "semicolons-in-quotes": f'{PY} -c "{ONE_LINE_APP}"',
    "quoted-ampersand": f"{PY} app.py 'https://x?a=1&b=2'",
    "leading-assignment": f"VAR=x {PY} app.py",
    "cd-and-list": f"cd sub && {PY} app.py",
    "migrate-then-app": f"{PY} manage.py migrate && {PY} app.py",
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=list(COMMANDS))
def test_the_app_is_the_instance_and_stops_in_its_own_time(
    tmp_path: Path, keelrun, command: str
) -> None:
    app = make_app(tmp_path, f"web: {command}\n")
    (app / "app.py").write_text(APP)
    (app / "sub").mkdir()
    (app / "sub" / "app.py").write_text(APP)
    (app / "manage.py").write_text("print('migrated', flush=True)\n")
    run = keelrun.start("start", "--no-timestamp", "--log-format", "json", cwd=app)
    run.wait_for_line(r'"msg": "pid \d+')
    app_line = next(r["msg"] for r in run.records() if r.get("msg", "").startswith("pid "))
    app_pid = int(app_line.split()[1])
    assert run.events("process_started")[0]["pid"] == app_pid  # no shell in between
    if "VAR=x" in command:
        assert app_line.split()[2] == "x"
    if "&b=2" in command:
        assert app_line.endswith("https://x?a=1&b=2")
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0
    records = run.records()
    exited = next(i for i, r in enumerate(records) if r.get("event") == "process_exited")
    assert records[exited]["status"] == 7  # the app's own status, not the shell's 143
    assert not run.events("process_killed")
    stopped = next(i for i, r in enumerate(records) if r.get("msg") == "stopped")
    assert stopped < exited  # it ran its handler through, and its last line came first
    if "migrate" in command:
        assert any(r.get("msg") == "migrated" for r in records[:stopped])


# ---- cost at spawn -------------------------------------------------------------------


def test_reading_a_command_costs_little_and_once_per_command() -> None:
    command = (
        "cd backend && DJANGO_SETTINGS_MODULE=x.prod python manage.py migrate --noinput &&"
        ' gunicorn "app.wsgi" --bind="0.0.0.0:${PORT:-5000}" --workers 4 2>&1 # deploy'
    )
    read = exec_form.__wrapped__  # type: ignore[attr-defined]
    started = time.perf_counter()
    for i in range(200):
        read(f"{command} {i}")
    per_read = (time.perf_counter() - started) / 200
    assert per_read < 0.002, f"{per_read * 1e6:.0f} us per command"  # ~50 us measured
    # 1,000 instances of one type: read once, then a cache hit each.
    exec_form.cache_clear()  # type: ignore[attr-defined]
    for _ in range(1000):
        exec_form(command)
    info = exec_form.cache_info()  # type: ignore[attr-defined]
    assert (info.misses, info.hits) == (1, 999)
