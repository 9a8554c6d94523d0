"""`keelrun export` on the command line: DIR handling, bad input, the container example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, make_app, run_keelrun


def one_line_error(r, status: int = 2) -> str:
    assert r.returncode == status, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("keelrun: ")
    return lines[0]


def test_existing_files_are_overwritten_others_kept(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "app.target").write_text("stale")
    r = run_keelrun("export", "systemd", str(out), cwd=app)
    assert r.returncode == 0, r.stderr
    assert (out / "notes.txt").read_text() == "mine"
    assert "stale" not in (out / "app.target").read_text()
    assert r.stdout.splitlines() == [
        f"wrote {out / 'app.target'}",
        f"wrote {out / 'app-web@.service'}",
    ]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_missing_dir_is_created(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    assert run_keelrun("export", "supervisord", str(out), cwd=app).returncode == 0
    assert (out / "app.conf").is_file()


@pytest.mark.parametrize("fmt", ["systemd", "supervisord", "kubernetes"])
def test_dir_that_is_a_file_is_an_input_error(app: Path, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / "taken"
    target.write_text("x")
    line = one_line_error(run_keelrun("export", fmt, str(target), cwd=app))
    assert line == f"keelrun: {target}: exists and is not a directory"


def test_dir_that_cannot_be_created_is_an_input_error(app: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    line = one_line_error(run_keelrun("export", "systemd", str(tmp_path / "file" / "d"), cwd=app))
    assert "cannot create directory" in line
    line = one_line_error(run_keelrun("export", "systemd", "/proc/keelrun-export", cwd=app))
    assert "/proc/keelrun-export: cannot create directory" in line


def test_a_generated_name_taken_by_a_directory_is_an_input_error(app: Path, tmp_path: Path) -> None:
    (tmp_path / "out" / "app.conf").mkdir(parents=True)
    line = one_line_error(run_keelrun("export", "supervisord", str(tmp_path / "out"), cwd=app))
    assert "app.conf: is a directory" in line


def test_unknown_format_is_a_usage_error(app: Path, tmp_path: Path) -> None:
    line = one_line_error(run_keelrun("export", "upstart", str(tmp_path / "o"), cwd=app))
    assert "upstart" in line


def test_bad_procfile_names_file_and_line(tmp_path: Path) -> None:
    root = make_app(tmp_path / "app", "web: ok\nweb: again\n")
    line = one_line_error(run_keelrun("export", "kubernetes", str(tmp_path / "o"), cwd=root))
    assert "Procfile:2" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["", "  ", "!!!"])
def test_unusable_app_name_is_an_input_error(app: Path, tmp_path: Path, name: str) -> None:
    line = one_line_error(
        run_keelrun("export", "systemd", str(tmp_path / "o"), "--app", name, cwd=app)
    )
    assert line.startswith("keelrun: --app: ")


def test_kubernetes_name_clash_leaves_dir_untouched(tmp_path: Path) -> None:
    root = make_app(tmp_path / "app", "web_a: a\nweb-a: b\n")
    line = one_line_error(run_keelrun("export", "kubernetes", str(tmp_path / "o"), cwd=root))
    assert "share the Kubernetes name 'web-a'" in line
    assert list((tmp_path / "o").iterdir()) == []


# ---- the container example -----------------------------------------------------------


def dockerfile_instructions() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    text = (REPO / "examples" / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.setdefault(word.upper(), []).append(rest.strip())
    return found


def test_dockerfile_runs_keelrun_start_as_exec_form_entrypoint() -> None:
    d = dockerfile_instructions()
    assert d["FROM"] == ["python:3.11-slim"]
    # Exec form: keelrun itself is PID 1 and receives docker stop's signal.
    assert json.loads(d["ENTRYPOINT"][-1]) == ["keelrun", "start"]
    assert json.loads(d["CMD"][-1]) == []
    assert "KEELRUN_LOG_FORMAT=json" in d["ENV"]
    assert d["STOPSIGNAL"] == ["SIGTERM"]


def test_dockerfile_copies_only_what_exists() -> None:
    for copy in dockerfile_instructions()["COPY"]:
        *sources, _dest = [w for w in copy.split() if not w.startswith("--")]
        for source in sources:
            assert (REPO / source).exists(), source
    assert (REPO / "examples" / "Procfile").read_text().count("release:") == 1


@pytest.mark.parametrize(("policy", "expected"), [("never", "no"), ("always", "always")])
def test_restart_flag_reaches_the_units(
    app: Path, tmp_path: Path, policy: str, expected: str
) -> None:
    out = tmp_path / "units"
    r = run_keelrun("export", "systemd", str(out), "--restart", policy, cwd=app)
    assert r.returncode == 0, r.stderr
    units = list(out.glob("*@.service"))
    assert units
    for unit in units:
        assert f"Restart={expected}\n" in unit.read_text()


def test_bad_restart_flag_is_an_input_error(app: Path, tmp_path: Path) -> None:
    r = run_keelrun("export", "systemd", str(tmp_path / "u"), "--restart", "bogus", cwd=app)
    assert one_line_error(r) == (
        'keelrun: --restart: expected one of on-failure, always, never, got "bogus"'
    )
