"""load_settings: every source, its precedence and its errors."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from conftest import make_app

from keelrun.config import Overrides, load_settings
from keelrun.environment import instance_env
from keelrun.errors import InputErrors
from keelrun.formation import expand
from keelrun.healthspec import Check

PROCFILE = "web: w\nrelease: r\nworker: k\nclock: c\n"


def load(root: Path, environ: dict[str, str] | None = None, **kw):
    return load_settings(Overrides(app_root=str(root), **kw), environ or {})


def errors(root: Path, environ: dict[str, str] | None = None, **kw) -> list[str]:
    with pytest.raises(InputErrors) as e:
        load(root, environ, **kw)
    return e.value.lines()


def test_defaults(tmp_path: Path) -> None:
    root = make_app(tmp_path, PROCFILE)
    s = load(root, {"HOME": "/h"})
    assert s.app_root == root
    assert s.procfile == root / "Procfile"
    assert [(t.name, t.index, t.count, t.base_port) for t in s.types] == [
        ("web", 0, 1, 5000),
        ("worker", 2, 1, 5200),
        ("clock", 3, 1, 5300),
    ]
    assert s.release is not None and (s.release.command, s.release.index) == ("r", 1)
    web = s.types[0]
    assert (web.restart, web.max_restarts, web.grace, web.stop_signal) == (
        "on-failure",
        5,
        5.0,
        signal.SIGTERM,
    )
    assert (web.depends_on, web.ready, web.ready_timeout) == ((), None, 60.0)
    assert s.env == {"HOME": "/h"}
    assert (s.port, s.timeout, s.log_format, s.color, s.timestamp, s.prefix) == (
        5000,
        5.0,
        "text",
        None,
        True,
        True,
    )
    assert s.socket == root / ".keelrun.sock"
    assert s.env_files == ()


CONFIG = """
[tool.keelrun]
port = 7000
timeout = 2.5
restart = "always"
max_restarts = 3
log_format = "json"
env_override = true
socket = "run/k.sock"
formation = {worker = 3}

[tool.keelrun.processes.web]
count = 2
grace = 9
stop_signal = "INT"
ready = "port"
ready_timeout = 5

[tool.keelrun.processes.worker]
restart = "never"
depends_on = ["web"]
ready = "log:^ready$"
"""


def test_config_file_values(tmp_path: Path) -> None:
    root = make_app(tmp_path, PROCFILE, pyproject=CONFIG)
    s = load(root)
    web, worker, clock = s.types
    assert (s.port, s.timeout, s.log_format, s.env_override) == (7000, 2.5, "json", True)
    assert s.socket == root / "run" / "k.sock"
    assert (web.count, web.grace, web.stop_signal, web.ready, web.ready_timeout) == (
        2,
        9.0,
        signal.SIGINT,
        Check("port"),
        5.0,
    )
    assert (web.restart, worker.restart, clock.restart) == ("always", "never", "always")
    assert (worker.count, worker.depends_on, worker.ready) == (
        3,
        ("web",),
        Check("log", pattern="^ready$"),
    )
    assert clock.grace == 2.5 and clock.max_restarts == 3
    assert [(i.name, i.port) for i in expand(s)] == [
        ("web.1", 7000),
        ("web.2", 7001),
        ("worker.1", 7200),
        ("worker.2", 7201),
        ("worker.3", 7202),
        ("clock.1", 7300),
    ]


def test_keelrun_toml_has_keys_at_top_level(tmp_path: Path) -> None:
    root = make_app(tmp_path, PROCFILE, keelrun_toml="timeout = 1\n[processes.web]\ncount = 0\n")
    s = load(root)
    assert s.timeout == 1.0 and s.types[0].count == 0


def test_pyproject_without_keelrun_section_is_ignored(tmp_path: Path) -> None:
    root = make_app(
        tmp_path, PROCFILE, pyproject='[project]\nname = "x"\n', keelrun_toml="port = 6000\n"
    )
    assert load(root).port == 6000


def test_both_config_files_is_an_error(tmp_path: Path) -> None:
    root = make_app(tmp_path, PROCFILE, pyproject="[tool.keelrun]\n", keelrun_toml="")
    assert errors(root) == [
        f"{root}/keelrun.toml: configuration is also in {root}/pyproject.toml "
        "[tool.keelrun]; keep only one of them"
    ]


def test_precedence_flag_over_variable_over_config(tmp_path: Path) -> None:
    root = make_app(
        tmp_path, PROCFILE, pyproject="[tool.keelrun]\ntimeout = 1\nrestart = 'never'\n"
    )
    env = {"KEELRUN_TIMEOUT": "2", "KEELRUN_RESTART": "always"}
    assert load(root).timeout == 1.0
    assert load(root, env).timeout == 2.0
    assert load(root, env, timeout="3").timeout == 3.0
    assert load(root, env, restart="on-failure").types[0].restart == "on-failure"
    assert load(root, {"KEELRUN_LOG_FORMAT": "json"}).log_format == "json"
    assert load(root, {"KEELRUN_MAX_RESTARTS": "0"}).types[0].max_restarts == 0
    assert load(root, {"KEELRUN_TIMEOUT": ""}).timeout == 1.0  # empty = unset


def test_a_flag_or_variable_beats_a_type_s_own_table(tmp_path: Path) -> None:
    """`-t`/`--restart` (or their KEELRUN_ variables) are every type's; in the config
    file a type's own `grace`/`restart` beat the top-level defaults."""
    root = make_app(
        tmp_path,
        PROCFILE,
        keelrun_toml="timeout = 1\nrestart = 'never'\n"
        "[processes.web]\ngrace = 9\nrestart = 'always'\n",
    )
    web, worker = load(root).types[:2]
    assert (web.grace, web.restart, worker.grace, worker.restart) == (9, "always", 1, "never")
    for s in (
        load(root, timeout="3", restart="on-failure"),
        load(root, {"KEELRUN_TIMEOUT": "3", "KEELRUN_RESTART": "on-failure"}),
    ):
        assert {(t.grace, t.restart) for t in s.types} == {(3.0, "on-failure")}


def test_a_restart_for_every_type_leaves_the_exit_code_from_type_never(
    tmp_path: Path,
) -> None:
    root = make_app(tmp_path, "web: w\ne2e: t\n")
    s = load(root, {"KEELRUN_RESTART": "always"}, exit_code_from="e2e")
    assert [(t.name, t.restart) for t in s.types] == [("web", "always"), ("e2e", "never")]
    s = load(root, exit_code_from="e2e", restart="on-failure")
    assert [(t.name, t.restart) for t in s.types] == [("web", "on-failure"), ("e2e", "never")]


def test_port_precedence(tmp_path: Path) -> None:
    root = make_app(
        tmp_path, PROCFILE, env="PORT=6000\n", pyproject="[tool.keelrun]\nport = 7000\n"
    )
    assert load(root, {"PORT": "6500", "KEELRUN_PORT": "8000"}, port="9000").port == 9000
    assert load(root, {"PORT": "6500", "KEELRUN_PORT": "8000"}).port == 8000
    assert load(root, {"PORT": "6500"}).port == 6500  # real environment beats .env
    assert load(root, {"PORT": "6500"}, env_override=True).port == 6000
    assert load(root).port == 6000
    (root / ".env").unlink()
    assert load(root).port == 7000
    (root / "pyproject.toml").unlink()
    assert load(root).port == 5000


def test_formation_layers(tmp_path: Path) -> None:
    root = make_app(
        tmp_path,
        PROCFILE,
        pyproject='[tool.keelrun]\nformation = "web=2"\n'
        "[tool.keelrun.processes.clock]\ncount = 0\n",
    )

    def counts(**kw):
        return [t.count for t in load(root, **kw).types]

    assert counts() == [2, 1, 0]
    assert counts(environ={"KEELRUN_FORMATION": "worker=4"}) == [2, 4, 0]
    assert counts(environ={"KEELRUN_FORMATION": "worker=4"}, formation="all=3") == [3, 3, 3]
    assert counts(formation="web=0,all=2") == [0, 2, 2]


def test_env_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_app(tmp_path / "app", PROCFILE, env="A=default\n")
    (root / "one.env").write_text("A=one\nB=one\n")
    (root / "two.env").write_text("B=two\nPYTHONUNBUFFERED=0\n")
    assert load(root).env == {"A": "default"}
    monkeypatch.chdir(root)
    s = load(root, env_files=("one.env,two.env",))
    assert s.env == {"A": "one", "B": "two", "PYTHONUNBUFFERED": "0"}
    assert s.env_files == (root / "one.env", root / "two.env")
    assert load(root, env_files=("two.env", "one.env")).env["B"] == "one"
    assert load(root, {"KEELRUN_ENV_FILES": "one.env"}).env == {
        "A": "one",
        "B": "one",
        "KEELRUN_ENV_FILES": "one.env",
    }
    # A variable a .env file sets counts as set, PYTHONUNBUFFERED too.
    spec = expand(s)[0]
    env = instance_env(s, spec)
    assert (env["PYTHONUNBUFFERED"], env["PORT"], env["PS"], env["DYNO"]) == (
        "0",
        "5000",
        "web.1",
        "web.1",
    )


def test_config_paths_are_relative_to_app_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_app(
        tmp_path / "app", PROCFILE, pyproject='[tool.keelrun]\nenv_files = ["conf/x.env"]\n'
    )
    (root / "conf").mkdir()
    (root / "conf" / "x.env").write_text("X=1\n")
    monkeypatch.chdir(tmp_path)
    assert load(root).env == {"X": "1"}
    (tmp_path / "other.env").write_text("Y=2\n")
    assert load(root, env_files=("other.env",)).env == {"Y": "2"}
    (tmp_path / "Procfile.dev").write_text("dev: d\n")
    s = load(root, procfile="Procfile.dev")
    assert s.procfile == tmp_path / "Procfile.dev" and s.types[0].name == "dev"


def test_socket_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_app(tmp_path / "app", PROCFILE, keelrun_toml='socket = "s.sock"\n')
    monkeypatch.chdir(tmp_path)
    named = load(root)
    assert named.socket == root / "s.sock" and named.socket_named
    given = load(root, socket="f.sock")
    assert given.socket == tmp_path / "f.sock" and given.socket_named
    (root / "keelrun.toml").unlink()
    default = load(root)
    assert default.socket == root / ".keelrun.sock" and not default.socket_named
    # Naming the default path still names it: it must not move.
    assert load(root, socket=str(root / ".keelrun.sock")).socket_named


def test_display_flags(tmp_path: Path) -> None:
    root = make_app(tmp_path, PROCFILE)
    s = load(root, color=False, no_timestamp=True)
    assert (s.color, s.timestamp, s.prefix) == (False, False, True)
    s = load(root, no_prefix=True)
    assert (s.timestamp, s.prefix) == (False, False)


def test_missing_procfile(tmp_path: Path) -> None:
    assert errors(tmp_path) == [f"{tmp_path}/Procfile: no such file"]
    s = load_settings(Overrides(app_root=str(tmp_path)), {}, require_procfile=False)
    assert s.types == () and s.release is None


def test_missing_app_root(tmp_path: Path) -> None:
    assert errors(tmp_path / "nope") == [f'--app-root: no such directory "{tmp_path}/nope"']


BAD_CONFIG = """
[tool.keelrun]
bogus = 1
port = 0
timeout = -1
restart = "sometimes"
max_restarts = 1.5
log_format = 3
env_override = "maybe"
formation = {web = -1}

[tool.keelrun.processes.web]
count = "two"
grace = "x"
stop_signal = "FOO"
depends_on = ["nope", "release"]
ready = "log:("
ready_timeout = 0
tty = "yes please"
colour = "red"

[tool.keelrun.processes.ghost]
count = 1

[tool.keelrun.processes.release]
count = 1
"""


def test_every_config_error_names_file_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_app(tmp_path, PROCFILE, pyproject=BAD_CONFIG)
    monkeypatch.chdir(root)
    p = "pyproject.toml: tool.keelrun"
    assert sorted(errors(root)) == sorted(
        [
            f"{p}.bogus: unknown key (known: env_files, env_override, formation, port, timeout, "
            "restart, max_restarts, exit_code_from, abort_on_exit, log_format, quiet, watch, "
            "socket, processes)",
            f'{p}.env_override: expected true or false, got "maybe"',
            f"{p}.timeout: expected a number of seconds >= 0 (a year at most), got -1",
            f'{p}.restart: expected one of on-failure, always, never, got "sometimes"',
            f"{p}.max_restarts: expected an integer, got 1.5",
            f"{p}.log_format: expected one of text, json, got 3",
            f"{p}.port: expected an integer 1-65535, got 0",
            f"{p}.processes.web.colour: unknown key (known: count, restart, grace, stop_signal, "
            "depends_on, ready, health, ready_interval, probe_timeout, ready_timeout, "
            "health_interval, health_retries, watchdog, success_codes, watch, tty)",
            f'{p}.processes.web.count: expected an integer, got "two"',
            f'{p}.processes.web.grace: expected a number of seconds, got "x"',
            f'{p}.processes.web.stop_signal: unknown signal "FOO"',
            f"{p}.processes.web.ready: invalid regular expression: missing ), unterminated "
            "subpattern at position 0",
            f'{p}.processes.web.tty: expected true or false, got "yes please"',
            f"{p}.processes.web.ready_timeout: expected a number of seconds > 0 (a year at most), "
            "got 0",
            f'{p}.processes.ghost: no process type "ghost" in the Procfile '
            "(types: web, worker, clock)",
            f"{p}.processes.release.count: release is not part of the formation",
            f'{p}.processes.web.depends_on: no process type "nope" in the Procfile '
            "(types: web, worker, clock)",
            f'{p}.processes.web.depends_on: "release" runs before the formation, not in it',
            f"{p}.formation.web: expected an integer 0-10000, got -1",
        ]
    )


def test_dependency_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_app(
        tmp_path,
        PROCFILE,
        keelrun_toml='[processes.web]\ndepends_on = ["clock"]\n[processes.clock]\n'
        'depends_on = ["worker"]\n[processes.worker]\ndepends_on = ["web"]\n',
    )
    monkeypatch.chdir(root)
    assert errors(root) == [
        "keelrun.toml: processes.web.depends_on: dependency cycle web -> clock -> worker -> web"
    ]


def test_invalid_toml_names_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_app(tmp_path, PROCFILE, pyproject="[tool.keelrun]\nport = = 1\n")
    monkeypatch.chdir(root)
    assert errors(root) == ["pyproject.toml:2: invalid TOML: Invalid value (column 8)"]


@pytest.mark.parametrize(
    ("kw", "environ", "message"),
    [
        ({"port": "abc"}, {}, '--port: expected an integer, got "abc"'),
        ({"port": "70000"}, {}, "--port: expected an integer 1-65535, got 70000"),
        ({}, {"KEELRUN_PORT": "x"}, 'KEELRUN_PORT: expected an integer, got "x"'),
        ({}, {"PORT": "x"}, 'environment: PORT: expected an integer, got "x"'),
        ({"timeout": "soon"}, {}, '--timeout: expected a number of seconds, got "soon"'),
        (
            {"timeout": "nan"},
            {},
            '--timeout: expected a number of seconds >= 0 (a year at most), got "nan"',
        ),
        ({"restart": "x"}, {}, '--restart: expected one of on-failure, always, never, got "x"'),
        ({"max_restarts": "-1"}, {}, "--max-restarts: expected an integer >= 0, got -1"),
        ({"log_format": "xml"}, {}, '--log-format: expected one of text, json, got "xml"'),
        (
            {},
            {"KEELRUN_ENV_OVERRIDE": "perhaps"},
            'KEELRUN_ENV_OVERRIDE: expected true or false, got "perhaps"',
        ),
        ({"formation": "web=x"}, {}, '--formation: web: expected a count (0 or more), got "x"'),
        (
            {"formation": "nope=1"},
            {},
            '--formation: no process type "nope" in the Procfile (types: web, worker, clock)',
        ),
        (
            {"formation": "wbe=1"},
            {},
            '--formation: no process type "wbe" in the Procfile; did you mean "web"?',
        ),
        (
            {"only_types": ("nope",)},
            {},
            'TYPE: no process type "nope" in the Procfile (types: web, worker, clock)',
        ),
        (
            {"only_types": ("wbe",)},
            {},
            'TYPE: no process type "wbe" in the Procfile; did you mean "web"?',
        ),
        ({"port": "65400", "formation": "clock=1"}, {}, None),
    ],
)
def test_flag_and_variable_errors(
    tmp_path: Path, kw: dict, environ: dict, message: str | None
) -> None:
    root = make_app(tmp_path, PROCFILE)
    if message is None:  # 65400 + 300 overflows: named on the Procfile
        assert errors(root, environ, **kw) == [
            f'{root}/Procfile: type "worker" would get port 65600, above 65535 (base port 65400)',
            f'{root}/Procfile: type "clock" would get port 65700, above 65535 (base port 65400)',
        ]
    else:
        assert errors(root, environ, **kw) == [message]


def test_env_file_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_app(tmp_path, PROCFILE, env="A=1\nbad line\nPORT=x\n")
    monkeypatch.chdir(root)
    assert errors(root, env_files=(".env", "missing.env")) == [
        ".env:2: cannot parse this line (expected KEY=value)",
        "missing.env: no such file (named by --env)",
    ]
    (root / ".env").write_text("PORT=x\n")
    assert errors(root) == ['.env:1: PORT: expected an integer, got "x"']


def test_errors_from_every_source_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_app(tmp_path, "web: a\nweb: b\n", env="oops here\n", keelrun_toml="timeout = 'x'\n")
    monkeypatch.chdir(root)
    assert errors(root, port="p") == [
        'Procfile:2: duplicate process type "web" (first defined on line 1)',
        ".env:1: cannot parse this line (expected KEY=value)",
        'keelrun.toml: timeout: expected a number of seconds, got "x"',
        '--port: expected an integer, got "p"',
    ]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('port = "6000"', "port: expected an integer"),
        ('timeout = "5"', "timeout: expected a number of seconds"),
        ('max_restarts = "3"', "max_restarts: expected an integer"),
        ('env_override = "yes"', "env_override: expected true or false"),
        ('watch = "true"', "watch: expected true or false"),
        ('formation = {web = "2"}', "formation.web: expected an integer"),
        ('[processes.web]\ncount = "2"', "processes.web.count: expected an integer"),
        ('[processes.web]\ngrace = "3"', "processes.web.grace: expected a number of seconds"),
        ('[processes.web]\ntty = "yes"', "processes.web.tty: expected true or false"),
        ('[processes.web]\nhealth_retries = "3"', "processes.web.health_retries: expected an"),
        ('[processes.web]\ndepends_on = "worker"', "processes.web.depends_on: expected an array"),
        ('[processes.web]\nwatch = "*.py"', "processes.web.watch: expected an array"),
    ],
)
def test_a_config_file_gives_toml_types_not_text(tmp_path: Path, toml: str, message: str) -> None:
    """In TOML "2" is a string: a number, boolean or array given as one is an error
    (the text forms are for flags and KEELRUN_* variables)."""
    root = make_app(tmp_path, PROCFILE, keelrun_toml=toml + "\n")
    got = errors(root)
    assert len(got) == 1 and f"/keelrun.toml: {message}" in got[0], got


def test_the_text_forms_still_work_from_variables(tmp_path: Path) -> None:
    root = make_app(tmp_path, PROCFILE, keelrun_toml='formation = "web=2"\n')
    environ = {"KEELRUN_TIMEOUT": "7", "KEELRUN_ENV_OVERRIDE": "yes", "KEELRUN_MAX_RESTARTS": "2"}
    s = load(root, environ, port="6000")
    assert (s.timeout, s.env_override, s.port, s.type_named("web").count) == (7, True, 6000, 2)
    assert s.type_named("web").max_restarts == 2


def test_the_config_port_is_checked_even_where_port_overrides_it(tmp_path: Path) -> None:
    root = make_app(tmp_path, PROCFILE, keelrun_toml='port = "x"\n')
    assert errors(root, {"PORT": "7000"}) == [
        f'{root}/keelrun.toml: port: expected an integer, got "x"'
    ]
