"""`--release` runs the release type to completion before the
formation; a failed release stops there; `keelrun release` runs it alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_app

pytestmark = pytest.mark.timeout(30)

PROCFILE = (
    "release: echo migrating; sleep 0.3; echo done > released; echo migrated\n"
    "web: test -e released && echo saw-release || echo no-release\n"
    "worker: echo worker-ran\n"
)


def index_of(lines: list[str], text: str) -> int:
    return next(i for i, line in enumerate(lines) if text in line)


def test_release_runs_to_completion_before_the_formation(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, PROCFILE)
    run = keelrun.start("start", "--release", "--no-timestamp", cwd=app)
    assert run.wait_exit() == 0
    lines = run.text_lines()
    run.wait_for_line(r"^release\.1 +\| migrated$")
    run.wait_for_line(r"^web\.1 +\| saw-release$")
    run.wait_for_line(r"^worker\.1 +\| worker-ran$")
    release_end = index_of(lines, "release.1 (pid")
    assert release_end < index_of(lines, "started web.1")
    assert release_end < index_of(lines, "started worker.1")


def test_without_release_flag_release_does_not_run(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, PROCFILE)
    run = keelrun.start("start", "--no-timestamp", cwd=app)
    assert run.wait_exit() == 0
    lines = run.text_lines()
    assert not any("migrating" in line for line in lines)
    assert "web.1    | no-release" in lines  # release.1 is not among the names


@pytest.mark.parametrize(("command", "status"), [("exit 7", 7), ("kill -9 $$", 137)])
def test_failed_release_never_starts_the_formation(
    tmp_path: Path, keelrun, command: str, status: int
) -> None:
    app = make_app(tmp_path, f"release: echo trying; {command}\nweb: echo web-ran\n")
    run = keelrun.start("start", "--release", "--log-format", "json", cwd=app)
    assert run.wait_exit() == status
    assert not [r for r in run.records() if r["proc"] == "web.1"]
    assert [e["target"] for e in run.events("process_started")] == ["release.1"]
    assert [e["status"] for e in run.events("release_failed")] == [status]


def test_release_command_runs_release_alone(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, PROCFILE)
    run = keelrun.start("release", cwd=app)
    assert run.wait_exit() == 0
    text = "\n".join(run.text_lines())
    assert "migrated" in text and "worker-ran" not in text and "saw-release" not in text
    assert (app / "released").exists()

    failing = make_app(tmp_path / "failing", "release: exit 5\nweb: echo web-ran\n")
    bad = keelrun.start("release", cwd=failing)
    assert bad.wait_exit() == 5
    assert not any("web-ran" in line for line in bad.text_lines())
    # Alone, there is no formation to hold back: the event does not speak of one.
    assert any(line.endswith("| release phase exited with status 5") for line in bad.text_lines())


def test_release_named_as_a_type_to_start_says_how_to_run_it(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, PROCFILE)
    run = keelrun.start("start", "release", cwd=app)
    assert run.wait_exit() == 2
    assert run.stderr == (
        'keelrun: TYPE: "release" is the release phase, not part of the formation: '
        "run it with `keelrun start --release` or `keelrun release`\n"
    )
    assert run.lines == []


def test_release_flag_without_release_type_is_an_input_error(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, "web: echo hi\n")
    run = keelrun.start("start", "--release", cwd=app)
    assert run.wait_exit() == 2
    assert run.stderr.startswith("keelrun: ") and "Traceback" not in run.stderr
    assert run.lines == []
