"""The guardian on its own, with real processes: its environment-marker sweep is
what remains where no cgroup can be made, so it is tested without one."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from keelrun.supervisor.guardian import MARKER_VAR, Guardian

pytestmark = pytest.mark.timeout(30)


def sleeper(env: dict[str, str]) -> subprocess.Popen[bytes]:
    # A new session, as a daemon would have: only the marker can find it.
    return subprocess.Popen(["sleep", "1000"], env=env, start_new_session=True)


def test_keelrun_dying_makes_the_guardian_kill_every_marked_process() -> None:
    marker = uuid.uuid4().hex
    guardian = Guardian(marker, None)
    guardian.start()
    marked = sleeper({**os.environ, MARKER_VAR: marker})
    other = sleeper({**os.environ, MARKER_VAR: "another-run"})
    try:
        os.close(guardian._w)  # what keelrun's death does to the pipe
        assert marked.wait(timeout=10) == -9
        assert other.poll() is None  # another run's process is left alone
    finally:
        for p in (marked, other):
            p.kill()
            p.wait()


def test_a_clean_release_kills_nothing() -> None:
    marker = uuid.uuid4().hex
    guardian = Guardian(marker, None)
    guardian.start()
    marked = sleeper({**os.environ, MARKER_VAR: marker})
    try:
        guardian.close()
        with pytest.raises(subprocess.TimeoutExpired):
            marked.wait(timeout=1.0)  # the sweep would take well under a second
    finally:
        marked.kill()
        marked.wait()
