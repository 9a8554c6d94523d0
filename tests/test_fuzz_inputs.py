"""Hypothesis fuzzing of every input parser.

Property, for any input: a correct result or keelrun.errors.InputError whose
text is one line naming a place, never another exception, never a hang
(hypothesis' deadline bounds each example, pytest-timeout the whole test).
The control protocol is fuzzed with the control socket tests.
"""

from __future__ import annotations

import json
import signal
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keelrun.config import Overrides, load_settings
from keelrun.config.options import CONFIG_KEYS, OPTIONS
from keelrun.config.options import TYPE_KEYS as DECLARED_TYPE_KEYS
from keelrun.envfile import EnvFile, merge, parse_env_text
from keelrun.errors import InputError, InputErrors
from keelrun.formation import parse_formation, parse_scale
from keelrun.procfile import NAME, parse_procfile
from keelrun.settings import Settings
from keelrun.signals import parse_signal

FUZZ = settings(
    max_examples=150,
    deadline=1000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

names = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=8)
nasty = st.sampled_from(
    ["", " ", "\t", "\r", "\n", "\r\n", ":", "=", "#", "\ufeff", "\x00", "\\", '"', "'", ",",
     "+", "-", "${", "}", "export ", "\u2028", "\x85", "٣", "¹", "web", "all", "release"]
)  # fmt: skip
# Text that is mostly made of the characters the grammars care about.
hostile_text = st.lists(st.one_of(nasty, names, st.text(max_size=5)), max_size=30).map("".join)


# Characters str.splitlines breaks at: an error quoting them spans several lines.
BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def check_error(e: InputError, where_prefix: str = "", source: str = "") -> None:
    """An input error is one line per problem and names a place.

    Errors that quote a value holding a line break are left to
    test_errors_quoting_line_breaks_stay_one_line (a known bug), so that the
    fuzzers keep looking for everything else.
    """
    problems = e.errors if isinstance(e, InputErrors) else [e]
    assert problems
    for p in problems:
        assert p.where, f"error without a place: {p!r}"
        assert p.where.startswith(where_prefix), (p.where, where_prefix)
        text = str(p)
        if not any(c in source for c in BREAKS):
            assert text.splitlines() == [text], f"error is not one line: {text!r}"


# ------------------------------------------------------------------ Procfile

procfile_line = st.one_of(
    st.builds(lambda n, c: f"{n}: {c}", names, st.text(min_size=1, max_size=20)),
    st.builds(lambda n, c: f"{n}:{c}", hostile_text, hostile_text),
    st.builds(lambda c: f"# {c}", hostile_text),
    hostile_text,
)


@FUZZ
@given(st.one_of(st.lists(procfile_line, max_size=12).map("\n".join), st.text(max_size=200)))
def test_procfile(text: str) -> None:
    try:
        entries = parse_procfile(text, "Procfile")
    except InputError as e:
        check_error(e, "Procfile")
        return
    assert entries
    seen = set()
    lines = text.removeprefix("\ufeff").splitlines()
    for entry in entries:
        assert NAME.fullmatch(entry.name) and entry.name not in seen
        seen.add(entry.name)
        assert entry.command.strip()
        assert lines[entry.line - 1].startswith(entry.name + ":")


# ---------------------------------------------------------------------- .env

env_line = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", names, hostile_text),
    st.builds(lambda k, v: f'export {k}="{v}"', names, hostile_text),
    st.builds(lambda k, v: f"{k}='{v}'", names, hostile_text),
    st.builds(lambda k, v: f"{k}=${{{v}}}", names, hostile_text),
    hostile_text,
)


@FUZZ
@given(
    st.one_of(st.lists(env_line, max_size=10).map("\n".join), st.text(max_size=200)),
    st.dictionaries(names, st.text(max_size=10), max_size=3),
    st.booleans(),
)
def test_envfile(text: str, environ: dict[str, str], override: bool) -> None:
    try:
        bindings = parse_env_text(text, ".env")
    except InputError as e:
        check_error(e, ".env")
        # Never quote a line: it may hold a secret.
        for p in e.errors if isinstance(e, InputErrors) else [e]:
            assert p.message.startswith("cannot parse")
        return
    merged = merge([EnvFile(Path(".env"), ".env", bindings)], environ, override)
    for b in bindings:
        assert b.key in merged.env or b.value is None
    for key, value in environ.items():
        if not override:
            assert merged.env[key] == value


# -------------------------------------------------------------------- config

scalar = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    hostile_text,
    st.sampled_from(["web=2", "web=2,all=0", "port", "log:^up", "log:(", "TERM", "SIGKILL",
                     "9", "99", "on-failure", "always", "json", "5000", "-1", ".env,.env2"]),
)  # fmt: skip
value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(names, hostile_text), inner, max_size=3),
    ),
    max_leaves=6,
)
# Every declared key (a new one is fuzzed without editing this file), and one unknown.
TOP_KEYS = [*CONFIG_KEYS, "bogus"]
TYPE_KEYS = [*DECLARED_TYPE_KEYS, "nope"]
process_table = st.dictionaries(st.sampled_from(TYPE_KEYS), value, max_size=4)
config = st.fixed_dictionaries(
    {},
    optional={
        **{k: value for k in TOP_KEYS},
        "processes": st.dictionaries(
            st.sampled_from(["web", "worker", "release", "ghost"]), process_table, max_size=3
        ),
    },
)


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v:
            return "nan"
        if v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a TOML basic string (bar lone surrogates)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_document(data: dict[str, Any], prefix: str) -> str:
    lines = [f"[{prefix}]"] if prefix else []
    lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in data.items()]
    return "\n".join(lines) + "\n"


PROCFILE = "web: echo web\nworker: echo worker\nrelease: echo release\n"
env_vars = st.dictionaries(
    st.sampled_from([*(o.var for o in OPTIONS if o.env), "PORT"]),
    st.one_of(hostile_text, st.sampled_from(["1", "0", "web=3", "always", "json", "70000"])),
    max_size=3,
)  # fmt: skip


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzzapp")
    (root / "Procfile").write_text(PROCFILE)
    return root


def _load(root: Path, environ: dict[str, str], source: str) -> Settings | None:
    try:
        return load_settings(Overrides(app_root=str(root)), environ)
    except InputError as e:
        check_error(e, "", source + "".join(environ.values()))
        return None


@FUZZ
@given(data=config, in_pyproject=st.booleans(), environ=env_vars)
def test_config_tables(app_dir: Path, data: dict[str, Any], in_pyproject: bool, environ) -> None:
    for name in ("pyproject.toml", "keelrun.toml"):
        (app_dir / name).unlink(missing_ok=True)
    if in_pyproject:
        (app_dir / "pyproject.toml").write_text(toml_document(data, "tool.keelrun"))
    else:
        (app_dir / "keelrun.toml").write_text(toml_document(data, ""))
    result = _load(app_dir, environ, json.dumps(data, ensure_ascii=False, default=str))
    if result is not None:
        assert {t.name for t in result.types} == {"web", "worker"}
        assert all(t.count >= 0 and 1 <= t.port_of(1) <= 65535 + 10_000 for t in result.types)


@FUZZ
@given(text=st.one_of(hostile_text, st.text(max_size=300)), name=st.sampled_from(
    ["pyproject.toml", "keelrun.toml"]))  # fmt: skip
def test_config_raw_text(app_dir: Path, text: str, name: str) -> None:
    for other in ("pyproject.toml", "keelrun.toml"):
        (app_dir / other).unlink(missing_ok=True)
    (app_dir / name).write_text(text, errors="surrogateescape")
    _load(app_dir, {}, text)


# ---------------------------------------------------- formation and scaling

formation_item = st.one_of(
    st.builds(lambda n, c: f"{n}={c}", names, st.integers(0, 10**6)),
    st.builds(lambda n, c: f" {n} = {c} ", names, st.integers(0, 99)),
    hostile_text,
)


@FUZZ
@given(st.one_of(st.lists(formation_item, max_size=6).map(",".join), st.text(max_size=60)))
def test_formation(text: str) -> None:
    try:
        counts = parse_formation(text, "--formation")
    except InputError as e:
        check_error(e, "--formation", text)
        return
    for name, count in counts.items():
        assert NAME.fullmatch(name) and isinstance(count, int) and count >= 0
    again = ",".join(f"{n}={c}" for n, c in counts.items())
    assert parse_formation(again, "--formation") == counts


scale_item = st.one_of(
    st.builds(lambda n, op, c: f"{n}={op}{c}", names, st.sampled_from(["", "+", "-"]),
              st.integers(0, 10**6)),
    hostile_text,
)  # fmt: skip


@FUZZ
@given(st.lists(scale_item, max_size=6))
def test_scale(changes: list[str]) -> None:
    try:
        parsed = parse_scale(changes, "scale")
    except InputError as e:
        check_error(e, "scale", "".join(changes))
        return
    assert len(parsed) == len(changes)
    for name, op, n in parsed:
        assert NAME.fullmatch(name) and op in "=+-" and n >= 0
    spelled = [f"{name}={'' if op == '=' else op}{n}" for name, op, n in parsed]
    assert parse_scale(spelled, "scale") == parsed


# ------------------------------------------------------------------ signals

signal_value = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from(
        [s.name for s in signal.Signals] + [s.name[3:].lower() for s in signal.Signals]
    ),
    st.builds(str, st.integers(-100, 100)),
    hostile_text,
    st.booleans(),
)


@FUZZ
@given(signal_value)
def test_signal(value: str | int) -> None:
    try:
        sig = parse_signal(value, "stop_signal")
    except InputError as e:
        check_error(e, "stop_signal", str(value))
        return
    assert isinstance(sig, signal.Signals)
    assert parse_signal(sig.name, "x") is sig and parse_signal(int(sig), "x") is sig


@pytest.mark.parametrize(
    "case",
    ["formation", "scale", "signal", "config", "env_var"],
)
def test_errors_quoting_line_breaks_stay_one_line(case: str, tmp_path: Path) -> None:
    """Regression (found by the fuzzers): a quoted value holding a newline split the error."""
    bad = "w\neb=1"
    try:
        if case == "formation":
            parse_formation(bad, "--formation")
        elif case == "scale":
            parse_scale([bad], "scale")
        elif case == "signal":
            parse_signal("TE\nRM", "stop_signal")
        else:
            (tmp_path / "Procfile").write_text(PROCFILE)
            if case == "config":
                (tmp_path / "keelrun.toml").write_text('port = "50\\n00"\n')
            environ = {"KEELRUN_TIMEOUT": "1\n2"} if case == "env_var" else {}
            load_settings(Overrides(app_root=str(tmp_path)), environ)
    except InputError as e:
        problems = e.errors if isinstance(e, InputErrors) else [e]
        for p in problems:
            assert str(p).splitlines() == [str(p)], repr(str(p))
    else:
        pytest.fail("accepted bad input")
