"""Pure pieces of `keelrun export`: names, quoting for each target, the YAML emitter."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from supervisor.options import ServerOptions, UnhosedConfigParser

from keelrun.errors import InputError
from keelrun.export import kubernetes, supervisord, systemd
from keelrun.export.names import dns_label, unit_name
from keelrun.export.plan import ExportPlan, instance_script
from keelrun.export.yamltext import dump
from keelrun.healthspec import Check
from keelrun.settings import ProcessTypeSettings, Settings

# A Procfile command: one line of anything but NUL and line breaks.
commands = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\0\n\r"),
    min_size=1,
    max_size=60,
)


def make_type(
    name: str = "web", command: str = "echo hi", index: int = 0, **kw
) -> ProcessTypeSettings:
    fields = {
        "count": 1,
        "base_port": 5000 + 100 * index,
        "restart": "on-failure",
        "max_restarts": 5,
        "grace": 5.0,
        "stop_signal": signal.SIGTERM,
        **kw,
    }
    return ProcessTypeSettings(name=name, command=command, index=index, **fields)


def make_plan(tmp_path: Path, *types: ProcessTypeSettings, **kw) -> ExportPlan:
    root = tmp_path / "app"
    s = Settings(
        app_root=root,
        procfile=root / "Procfile",
        types=types or (make_type(),),
        release=None,
        env={},
    )
    return ExportPlan(settings=s, app=kw.pop("app", "app"), directory=tmp_path / "out", **kw)


# ---- names -------------------------------------------------------------------------


def test_unit_names_keep_case_and_replace_the_rest() -> None:
    assert unit_name("My App (v2)") == "My-App-v2"
    assert unit_name("shop.example_1") == "shop.example_1"


def test_dns_labels_are_lowercase_alphanumeric_and_dashes() -> None:
    assert dns_label("My_App.v2") == "my-app-v2"
    assert dns_label("-x-") == "x"


@pytest.mark.parametrize("bad", ["", "!!!", "x" * 64])
def test_names_nothing_usable_or_too_long_is_an_input_error(bad: str) -> None:
    with pytest.raises(InputError) as e:
        dns_label(bad)
    assert e.value.where == "--app"


# ---- the instance script (run by a real /bin/sh) ----------------------------------


def run_script(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", script],
        env={"PATH": os.environ["PATH"], **(env or {})},
        capture_output=True,
        text=True,
        timeout=10,
    )


def test_instance_script_gives_keelrun_instance_environment() -> None:
    t = make_type("worker", 'echo "$PORT $PS $DYNO $PYTHONUNBUFFERED"', index=2)
    assert run_script(instance_script(t, "3")).stdout == "5202 worker.3 worker.3 1\n"
    kept = run_script(instance_script(t, "1"), {"PYTHONUNBUFFERED": ""})
    assert kept.stdout == "5200 worker.1 worker.1 \n"


def test_instance_script_refuses_a_non_numeric_instance() -> None:
    t = make_type(command="echo started")
    r = run_script(instance_script(t, "x", check_number=True))
    assert (r.returncode, r.stdout) == (2, "")
    assert "must be a number" in r.stderr


def test_instance_script_sources_the_env_file_first(tmp_path: Path) -> None:
    source = tmp_path / "it's here.sh"
    source.write_text("export GREETING='a b'\n")
    t = make_type(command='echo "$GREETING"')
    assert run_script(instance_script(t, "1", source=str(source))).stdout == "a b\n"


# ---- systemd quoting ----------------------------------------------------------------


def systemd_unquote(word: str, instance: str) -> str:
    """One double-quoted Exec word read back by the rules of systemd.service(5)."""
    assert word[0] == word[-1] == '"'
    out, i, body = [], 0, word[1:-1]
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            out.append(body[i + 1])
            i += 2
        elif ch == "$":
            assert body[i + 1] == "$", "a lone $ would be a variable reference"
            out.append("$")
            i += 2
        elif ch == "%":
            out.append("%" if body[i + 1] == "%" else instance)
            i += 2
        else:
            assert ch != '"', "an unescaped quote ends the word"
            out.append(ch)
            i += 1
    return "".join(out)


@settings(max_examples=200)
@given(commands)
def test_systemd_exec_word_reads_back_as_the_text(text: str) -> None:
    assert systemd_unquote(systemd.exec_word(text), "7") == text


def test_systemd_exec_start_runs_the_command_with_its_port(tmp_path: Path) -> None:
    cmd = """printf '%s|' "$PORT" "$PS" 'a "b" \\c' "100%" ; echo # done"""
    plan = make_plan(tmp_path, make_type("web", cmd, index=1))
    unit = systemd.render_service(plan, "app", plan.settings.types[0])
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    prefix = "ExecStart=/bin/sh -c "
    assert exec_start.startswith(prefix)
    r = run_script(systemd_unquote(exec_start.removeprefix(prefix), "2"))
    assert r.stdout == '5101|web.2|a "b" \\c|100%|\n'


def test_systemd_time_spans() -> None:
    assert systemd.time_span(5) == "5s"
    assert systemd.time_span(2.5) == "2500ms"


# ---- supervisord quoting (supervisor's own parser is the oracle) ------------------


def supervisord_command(value: str, process_num: int) -> list[str]:
    parser = UnhosedConfigParser()
    parser.read_string(
        f"[program:x]\ncommand={value}\nprocess_name=%(program_name)s.%(process_num)d\n"
        "numprocs=3\nnumprocs_start=1\n"
    )
    configs = ServerOptions().processes_from_section(parser, "program:x", "x")
    return shlex.split(configs[process_num - 1].command)


@settings(max_examples=200, deadline=None)
@given(commands)
def test_supervisord_command_reads_back_as_the_script(text: str) -> None:
    value = supervisord.command_value(text + " N=\0")
    assert supervisord_command(value, 2) == ["/bin/sh", "-c", text + " N=2"]


def test_supervisord_command_survives_comment_characters() -> None:
    script = "echo a ;b #c\t;d %e %(x)s"
    assert supervisord_command(supervisord.command_value(script), 1)[2] == script


# ---- Kubernetes --------------------------------------------------------------------


def test_kubernetes_grace_outlasts_keelrun_and_rounds_up(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, make_type(grace=7.2))
    doc = kubernetes.deployment(plan, "app", plan.settings.types[0])
    assert doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 13


def test_kubernetes_readiness_probe_for_checks_kubernetes_can_make(tmp_path: Path) -> None:
    api = make_type("api", index=1, ready=Check("port"), ready_interval=5)
    logger = make_type("logger", index=2, ready=Check("log", pattern="up"))
    plan = make_plan(tmp_path, api, logger)
    api_c = kubernetes.deployment(plan, "app", api)["spec"]["template"]["spec"]["containers"][0]
    log_c = kubernetes.deployment(plan, "app", logger)["spec"]["template"]["spec"]["containers"][0]
    assert api_c["readinessProbe"] == {
        "tcpSocket": {"port": 5100},
        "periodSeconds": 5,
        "timeoutSeconds": 2,
    }
    assert api_c["ports"][0]["containerPort"] == 5100
    assert "readinessProbe" not in log_c and "ports" not in log_c


def test_kubernetes_types_sharing_a_name_are_an_error(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, make_type("web_a"), make_type("web-a", index=1))
    with pytest.raises(InputError, match="share the Kubernetes name 'web-a'"):
        kubernetes.render(plan)


def test_kubernetes_too_long_name_names_app(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, make_type("w" * 40), app="a" * 30)
    with pytest.raises(InputError) as e:
        kubernetes.render(plan)
    assert e.value.where == "--app"


# ---- YAML emitter (PyYAML reads it back) -------------------------------------------

keys = st.text(max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20)
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300)
@given(st.dictionaries(keys, documents, max_size=5))
def test_yaml_round_trips_through_pyyaml(doc: dict) -> None:
    assert yaml.safe_load(dump(doc)) == (doc or {})


def test_yaml_keys_that_look_like_booleans_stay_strings() -> None:
    doc = {"on": "yes", "Y": ["no"], "NULL": None, "app.kubernetes.io/name": "x"}
    assert yaml.safe_load(dump(doc)) == doc
