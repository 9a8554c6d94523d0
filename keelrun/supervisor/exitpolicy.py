"""When keelrun stops on its own, and with which exit status: pure functions over plain values.

The rules (README, "Exit policy"):
- ``success_codes`` per type (default [0]): the statuses that count as success,
  for ``on-failure`` and for keelrun's own exit status. A death by signal N is
  status 128+N here, as keelrun reports it.
- A type that gave up (too many failed starts) stops everything: its status.
- ``abort_on_exit``: the first instance that ends and will not be restarted
  stops everything; keelrun exits with its status.
- ``exit_code_from = TYPE``: once every instance of TYPE has ended and none
  will be restarted, everything else is stopped and keelrun exits with the
  status of TYPE's last instance to end. With ``abort_on_exit`` too (docker
  compose's habit), whichever instance ends first stops everything, and the
  status is still TYPE's, taken once everything has stopped (docker compose's
  answer too), unless a type gave up.
- Otherwise keelrun exits when every instance has ended on its own: 0 when
  every last exit was a success, else the status of the first that failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

from keelrun.settings import RestartPolicy

DEFAULT_CODES = frozenset({0})


def is_success(status: int, codes: frozenset[int] = DEFAULT_CODES) -> bool:
    return status in codes


def restarts(policy: RestartPolicy, status: int, codes: frozenset[int] = DEFAULT_CODES) -> bool:
    """Whether an instance that ended with ``status`` (128+N for signal N) comes back."""
    if policy == "always":
        return True
    if policy == "never":
        return False
    return not is_success(status, codes)


# NamedTuples, not dataclasses: this module is imported on every start (see keelrun/settings.py).
class Ended(NamedTuple):
    """An instance as the exit policy sees it."""

    type: str
    final: bool  # ended on its own and will not be restarted (exited or failed)
    status: int | None  # last exit status, 128+N for signal N; None: never ended
    seq: int = 0  # order of the last end, from 1; 0: never ended
    gave_up: bool = False  # failed: too many failed starts in a row


class ExitPolicy(NamedTuple):
    exit_code_from: str | None = None
    abort_on_exit: bool = False
    success_codes: Mapping[str, frozenset[int]] = MappingProxyType({})  # by type

    def codes(self, type_name: str) -> frozenset[int]:
        return self.success_codes.get(type_name, DEFAULT_CODES)


class StopAll(NamedTuple):
    """Stop everything; exit with ``status``, or (None) with ``status_at_end`` once stopped."""

    status: int | None
    reason: str


def decide(policy: ExitPolicy, instances: Sequence[Ended], just_ended: Ended) -> StopAll | None:
    """Called when ``just_ended`` has become final (exited or failed): stop now, or not."""
    code = just_ended.status if just_ended.status is not None else 1
    target = policy.exit_code_from
    name = just_ended.type
    if just_ended.gave_up:
        # Always the failure's own status: a CI run whose web crashed must not pass
        # because the stopped test runner exited 0.
        return StopAll(code or 1, f"{name} failed")
    if policy.abort_on_exit:
        status = code if target is None or name == target else None
        return StopAll(status, f"an instance of {name} ended (abort on exit)")
    everything_ended = all(i.final for i in instances)
    if target is not None:
        if name == target and all(i.final for i in instances if i.type == target):
            return StopAll(code, f"every {target} instance has ended")
        return StopAll(None, "every process has ended") if everything_ended else None
    if everything_ended:
        return StopAll(natural_status(policy, instances), "every process has ended")
    return None


def natural_status(policy: ExitPolicy, instances: Iterable[Ended]) -> int:
    """Everything ended on its own: 0, or the status of the first whose last exit failed."""
    failed = [
        i
        for i in instances
        if i.status is not None and not is_success(i.status, policy.codes(i.type))
    ]
    if not failed:
        return 0
    return min(failed, key=lambda i: i.seq).status or 1


def status_at_end(policy: ExitPolicy, instances: Iterable[Ended], requested: int | None) -> int:
    """keelrun's exit status once everything has stopped after a ``StopAll``.

    ``requested`` is the StopAll's status; None means exit_code_from's type
    decides: the status of its last instance to end (stopped ones included).
    """
    if requested is not None:
        return requested
    target = policy.exit_code_from
    ended = [i for i in instances if i.type == target and i.status is not None]
    if not ended:
        return 0 if target is None else 1  # the type never ran: a CI run must not pass
    return max(ended, key=lambda i: i.seq).status or 0


def exit_code_from_problem(target: str | None, counts: Mapping[str, int]) -> str | None:
    """At start: a target type that will run no instance would keep keelrun up for ever."""
    if target is not None and counts.get(target, 0) == 0:
        return f"{target} has no instance in this run, so its exit status can never come"
    return None
