"""When an instance ends on its own: restart it with back-off, give up on its
type, or apply the exit policy (exitpolicy.py) to the instances.

``apply_exit_policy`` is called whenever an instance becomes final
(``exited``, or ``failed`` after too many failed starts): it may stop
everything (README "Exit policy"), with a status now or, for
``--exit-code-from``, with the status its type leaves once everything has
stopped (``final_status``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keelrun.supervisor.exitpolicy import Ended, ExitPolicy, decide, restarts, status_at_end
from keelrun.supervisor.instance import Instance
from keelrun.supervisor.lifecycle import State

if TYPE_CHECKING:
    from keelrun.supervisor.supervisor import Supervisor


def succeeded(inst: Instance) -> bool:
    """The last exit status is one of its type's ``success_codes``."""
    return inst.exit_status in inst.ptype.success_codes


def ended_by_itself(sup: Supervisor, inst: Instance, uptime: float, checked: bool) -> None:
    """Restart with back-off, give up, or let it rest as ``exited`` (README
    "`keelrun start`: what it does, exactly").

    ``checked``: stopped by its checks (not ready in time, unhealthy): a failed start.
    """
    failed = checked or not succeeded(inst)
    tracker = inst.tracker
    tracker.on_exit(uptime, failed)
    policy = inst.ptype.restart
    code = inst.exit_status or 0
    if restarts(policy, code, inst.ptype.success_codes) or (failed and policy != "never"):
        if tracker.gave_up():
            inst.state = State.FAILED
            sup.events.error(
                "process_failed",
                f"{inst.name} failed {_starts(tracker.failures)} in a row: giving up",
                target=inst.name,
                status=inst.exit_status,
            )
            apply_exit_policy(sup, inst)
            return
        delay = tracker.next_delay()
        inst.state = State.BACKOFF
        sup.events.warning(
            "process_restarting",
            f"restarting {inst.name} in {delay:g}s",
            target=inst.name,
            delay_s=delay,
        )
        inst.timer = sup.loop.call_later(delay, lambda: sup.restart_after_backoff(inst))
        return
    inst.state = State.EXITED
    apply_exit_policy(sup, inst)
    strand_dependents(sup, inst)
    sup.checks.settled()


def strand_dependents(sup: Supervisor, ended: Instance) -> None:
    """``ended`` will not run again: the instances held for its type can never
    start, so they fail (without this a CI run would wait for ever)."""
    name = ended.ptype.name
    strand(sup, [i for i in sup.instances.values() if name in i.ptype.depends_on], ended)


def strand(sup: Supervisor, held: list[Instance], ended: Instance | None = None) -> None:
    """Fail the held instances that wait for ``ended`` (or, without it, for any
    instance that has ended for good); a type that can never start is a failure
    (README "`keelrun start`: what it does, exactly")."""
    if sup.shutdown.active:
        return  # everything stops anyway
    stranded = []
    for inst in held:
        if inst.state is not State.HELD:
            continue
        gone = ended or next(
            (
                i
                for i in sup.instances.values()
                if i.ptype.name in inst.ptype.depends_on and i.state in (State.EXITED, State.FAILED)
            ),
            None,
        )
        if gone is None:
            continue
        inst.state = State.FAILED
        sup.events.error(
            "process_failed",
            f"{inst.name} cannot start: {gone.name}, which it waits for, has ended",
            target=inst.name,
            status=None,
        )
        stranded.append(inst)
    if stranded:
        apply_exit_policy(sup, stranded[0])


def _starts(n: int) -> str:
    return "1 start" if n == 1 else f"{n} starts"


def policy_of(sup: Supervisor) -> ExitPolicy:
    codes = {t.name: t.success_codes for t in sup.settings.types}
    return ExitPolicy(sup.settings.exit_code_from, sup.settings.abort_on_exit, codes)


def view(inst: Instance) -> Ended:
    final = inst.state in (State.EXITED, State.FAILED)
    failed = inst.state is State.FAILED
    return Ended(inst.ptype.name, final, inst.exit_status, inst.ended_seq, failed)


def views(sup: Supervisor) -> list[Ended]:
    return [view(i) for i in sup.instances.values() if i is not sup.release]


def apply_exit_policy(sup: Supervisor, inst: Instance) -> None:
    """``inst`` became final: stop everything if the policy says so, with an event."""
    policy = policy_of(sup)
    stop = decide(policy, views(sup), view(inst))
    if stop is None:
        return
    status = stop.status
    log = sup.events.info if succeeded(inst) else sup.events.warning
    if inst.state is State.FAILED:
        pass  # process_failed has said it
    elif policy.abort_on_exit:
        text = f"{inst.name} has ended: stopping everything (--abort-on-exit)"
        log("aborting", text, target=inst.name, status=inst.exit_status)
    elif policy.exit_code_from is not None and status is not None:
        text = f"{stop.reason}: stopping the others (--exit-code-from)"
        log("type_ended", text, target=inst.ptype.name, status=status)
    else:
        final = status_at_end(policy, views(sup), status)
        log = sup.events.warning if final else sup.events.info
        log("all_exited", "every process has ended", status=final)
    sup.shutdown.request(status, reason=stop.reason)


def final_status(sup: Supervisor) -> int:
    """keelrun's exit status once its loop has ended."""
    status = sup.shutdown.status
    if status is None:
        return status_at_end(policy_of(sup), views(sup), None)
    return status
