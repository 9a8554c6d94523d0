"""When keelrun stops on its own: the exit policy (exitpolicy.py) applied to the instances.

Called whenever an instance becomes final (``exited``, or ``failed`` after too
many failed starts): it may stop everything (README "Exit policy"), with a
status now or, for ``--exit-code-from``, with the status its type leaves once
everything has stopped (``final_status``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keelrun.supervisor.exitpolicy import Ended, ExitPolicy, decide, status_at_end
from keelrun.supervisor.instance import Instance
from keelrun.supervisor.lifecycle import State

if TYPE_CHECKING:
    from keelrun.supervisor.supervisor import Supervisor


def succeeded(inst: Instance) -> bool:
    """The last exit status is one of its type's ``success_codes``."""
    return inst.exit_status in inst.ptype.success_codes


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
