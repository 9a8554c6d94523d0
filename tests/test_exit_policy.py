"""Exit policy as pure functions: success codes, --exit-code-from, --abort-on-exit."""

from __future__ import annotations

import pytest

from keelrun.supervisor.exitpolicy import (
    Ended,
    ExitPolicy,
    StopAll,
    decide,
    exit_code_from_problem,
    is_success,
    natural_status,
    restarts,
    status_at_end,
)

PLAIN = ExitPolicy()
CI = ExitPolicy(exit_code_from="e2e")


def running(t: str) -> Ended:
    return Ended(t, final=False, status=None)


def ended(t: str, status: int, seq: int, gave_up: bool = False) -> Ended:
    return Ended(t, final=True, status=status, seq=seq, gave_up=gave_up)


def test_success_codes_drive_on_failure() -> None:
    codes = frozenset({0, 3})
    assert is_success(3, codes) and not is_success(1, codes)
    assert not restarts("on-failure", 3, codes)
    assert restarts("on-failure", 1, codes)
    assert restarts("on-failure", 143, codes)  # SIGTERM death: 128 + 15
    assert not restarts("on-failure", 143, frozenset({0, 143}))
    assert restarts("always", 0) and not restarts("never", 1)
    assert restarts("on-failure", 3)  # default [0]


def test_natural_end_uses_each_types_success_codes() -> None:
    policy = ExitPolicy(success_codes={"web": frozenset({0, 3})})
    done = [ended("web", 3, 1), ended("worker", 0, 2)]
    assert natural_status(policy, done) == 0
    done = [ended("web", 3, 1), ended("worker", 3, 2), ended("clock", 2, 3)]
    assert natural_status(policy, done) == 3  # worker's 3 is a failure, and first
    assert natural_status(PLAIN, [ended("web", 0, 1)]) == 0


def test_no_policy_waits_for_everything_to_end() -> None:
    web = ended("web", 0, 1)
    assert decide(PLAIN, [web, running("worker")], web) is None
    worker = ended("worker", 2, 2)
    assert decide(PLAIN, [web, worker], worker) == StopAll(2, "every process has ended")


def test_gave_up_stops_everything_with_its_status() -> None:
    web = ended("web", 1, 1, gave_up=True)
    assert decide(PLAIN, [web, running("e2e")], web) == StopAll(1, "web failed")
    # also under --exit-code-from: a crashed web must not let the CI run pass
    assert decide(CI, [web, running("e2e")], web) == StopAll(1, "web failed")
    killed = ended("web", 137, 1, gave_up=True)
    assert decide(CI, [killed], killed) == StopAll(137, "web failed")


def test_exit_code_from_waits_for_every_instance_of_its_type() -> None:
    web, e1 = running("web"), ended("e2e", 0, 1)
    assert decide(CI, [web, e1, running("e2e")], e1) is None
    e2 = ended("e2e", 4, 2)
    decision = decide(CI, [web, e1, e2], e2)
    assert decision == StopAll(4, "every e2e instance has ended")
    assert status_at_end(CI, [web, e1, e2], decision.status) == 4


def test_exit_code_from_ignores_other_types_ending() -> None:
    worker = ended("worker", 0, 1)
    assert decide(CI, [worker, running("e2e"), running("web")], worker) is None
    crashed = ended("web", 1, 2)  # ended and not restarted (restart = never)
    assert decide(CI, [worker, crashed, running("e2e")], crashed) is None


def test_exit_code_from_when_everything_ended_takes_its_types_status() -> None:
    e2e = ended("e2e", 5, 1)
    web = ended("web", 0, 2)
    decision = decide(CI, [e2e, web], web)
    assert decision == StopAll(None, "every process has ended")
    assert status_at_end(CI, [e2e, web], decision.status) == 5


def test_abort_on_exit_first_end_stops_everything() -> None:
    policy = ExitPolicy(abort_on_exit=True)
    worker = ended("worker", 0, 1)
    assert decide(policy, [running("web"), worker], worker) == StopAll(
        0, "an instance of worker ended (abort on exit)"
    )
    crash = ended("web", 3, 1)
    assert decide(policy, [crash, running("worker")], crash).status == 3


def test_abort_on_exit_with_exit_code_from_reports_the_types_status_at_the_end() -> None:
    policy = ExitPolicy(exit_code_from="e2e", abort_on_exit=True)
    web = ended("web", 0, 1)
    decision = decide(policy, [web, running("e2e")], web)
    assert decision is not None and decision.status is None
    # e2e was then stopped by keelrun: SIGTERM -> 143
    after = [web, Ended("e2e", final=False, status=143, seq=2)]
    assert status_at_end(policy, after, decision.status) == 143
    e2e = ended("e2e", 0, 1)
    assert decide(policy, [e2e, running("web")], e2e) == StopAll(
        0, "an instance of e2e ended (abort on exit)"
    )


def test_status_at_end_takes_the_last_to_end_and_never_passes_a_type_that_never_ran() -> None:
    instances = [ended("e2e", 1, 3), ended("e2e", 0, 5), ended("web", 9, 6)]
    assert status_at_end(CI, instances, None) == 0
    assert status_at_end(CI, [ended("web", 0, 1)], None) == 1
    assert status_at_end(CI, instances, 7) == 7


@pytest.mark.parametrize(
    ("counts", "problem"), [({"e2e": 1}, False), ({"e2e": 0}, True), ({}, True)]
)
def test_exit_code_from_problem(counts: dict[str, int], problem: bool) -> None:
    found = exit_code_from_problem("e2e", counts)
    assert (found is not None) is problem
    if found:
        assert "e2e has no instance in this run" in found
    assert exit_code_from_problem(None, counts) is None
