"""The option declarations (keelrun/config/options.py): one source for the CLI, the
loader's precedence and the README."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import click
import pytest
from conftest import REPO, make_app

from keelrun.clickcli import cli
from keelrun.config import Overrides, load_settings
from keelrun.config.options import BY_NAME, CONFIG_KEYS, OPTIONS, TYPE_KEYS
from keelrun.errors import InputErrors
from keelrun.settings import ProcessTypeSettings, Settings

README = (REPO / "README.md").read_text()


def _section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _spellings(flags: tuple[str, ...] | list[str]) -> list[str]:
    return [f for spelling in flags for f in spelling.split("/")]


def test_each_command_gets_its_declared_flags_and_spells_none_twice() -> None:
    declared = {f for o in OPTIONS for f in _spellings(o.flags) if f.startswith("--")}
    for opt in OPTIONS:
        for name in opt.commands:
            assert name in cli.commands, (opt.name, name)
            params = {p.name: p for p in cli.commands[name].params}
            param = params[opt.name]
            assert isinstance(param, click.Option)
            assert sorted(_spellings([*param.opts, *param.secondary_opts])) == sorted(
                _spellings(opt.flags)
            )
    for command in cli.commands.values():
        for p in command.params:
            if isinstance(p, click.Option) and p.name not in BY_NAME:
                # A command's own option may reuse a short letter (`logs -f` follows),
                # never a long flag that an option of the table spells.
                longs = {f for f in (*p.opts, *p.secondary_opts) if f.startswith("--")}
                assert not longs & declared, (command.name, p.name)


def test_every_setting_option_and_type_key_has_its_field() -> None:
    settings_fields = set(Settings._fields)
    type_fields = set(ProcessTypeSettings._fields)
    assert {o.name for o in OPTIONS if o.setting} <= settings_fields
    assert set(TYPE_KEYS) <= type_fields
    for key, spec in TYPE_KEYS.items():
        assert spec.inherit is None or spec.inherit in BY_NAME, key


def test_overrides_take_only_declared_options() -> None:
    o = Overrides(port="8000", formation="web=2", env_files=["a.env"], only_types=["web"])
    assert (o.port, o.formation, o.env_files) == ("8000", ("web=2",), ("a.env",))
    assert o.only_types == ("web",)
    assert o.timeout is None and o.env_override is None
    with pytest.raises(TypeError, match="not an option: prot"):
        Overrides(prot="8000")


# A value each option rejects, so that its error names the source that won; None
# when every non-blank text is right (a path: test_config checks those).
BAD = {
    "procfile": None,
    "env_files": "a,,b",
    "env_override": "maybe",
    "port": "p",
    "timeout": "soon",
    "restart": "sometimes",
    "max_restarts": "-1",
    "log_format": "xml",
    "quiet": "not a type",
    "watch": "sometimes",
    "socket": None,
    "exit_code_from": "nope",
    "abort_on_exit": "maybe",
}


def _where(root: Path, given: dict[str, str], environ: dict[str, str]) -> list[str]:
    with pytest.raises(InputErrors) as e:
        load_settings(Overrides(app_root=str(root), **given), environ)
    return [err.where for err in e.value.errors]


def test_every_layered_option_is_in_bad() -> None:
    # formation is layered, not picked: test_config.test_formation_layers.
    layered = {o.name for o in OPTIONS if (o.env or o.config) and o.name != "formation"}
    assert layered == set(BAD), "give the new option a bad value in BAD"


@pytest.mark.parametrize("name", sorted(n for n, bad in BAD.items() if bad is not None))
def test_precedence_flag_then_variable_then_config(tmp_path: Path, name: str) -> None:
    opt, bad = BY_NAME[name], BAD[name]
    assert bad is not None
    root = make_app(tmp_path, "web: a\n")
    if opt.config:
        (root / "keelrun.toml").write_text(f'{name} = "{bad}"\n')
        assert _where(root, {}, {}) == [f"{root}/keelrun.toml: {name}"]
    environ = {opt.var: bad} if opt.env else {}
    if opt.env:
        assert _where(root, {}, environ) == [opt.var]
    assert _where(root, {name: bad}, environ) == [opt.flag]


def test_readme_names_every_variable_and_no_other() -> None:
    text = _section("Precedence")
    named = set(re.findall(r"`(KEELRUN_[A-Z_]+)`", text)) - {"KEELRUN_<OPTION>"}
    assert named == {o.var for o in OPTIONS if o.env}


def test_readme_config_example_is_every_key_and_loads(tmp_path: Path) -> None:
    example = re.search(r"```toml\n(.*?)```", _section("Precedence"), re.DOTALL)
    assert example is not None
    data = tomllib.loads(example.group(1))["tool"]["keelrun"]
    assert set(data) == set(CONFIG_KEYS)
    assert set(data["processes"]["web"]) == set(TYPE_KEYS)
    root = make_app(tmp_path, "web: a\nworker: b\n", pyproject=example.group(1), env="")
    (root / ".env.local").write_text("")
    s = load_settings(Overrides(app_root=str(root)), {})
    assert s.type_named("web") is not None
