"""The health checks of a type as the platforms spell them: pure functions, plain values in.

Kubernetes: ``ready`` becomes a readinessProbe (port: tcpSocket, http:
httpGet on the container port, exec: ``/bin/sh -c COMMAND``), ``health`` a
livenessProbe (periodSeconds, timeoutSeconds, failureThreshold). keelrun only
starts liveness checks once an instance is ready; the kubelet's equivalent is
a startupProbe, which holds the livenessProbe back until it passes, and which
carries ``ready_timeout``. ``log:`` and ``notify`` checks have no Kubernetes
equivalent: they stay inside ``keelrun start TYPE`` in the pod.

systemd: ``ready = "notify"`` gives ``Type=notify`` with ``NotifyAccess=all``
(the app may notify from any process of its tree, as under keelrun) and
``TimeoutStartSec=`` from ``ready_timeout``; ``watchdog`` gives ``WatchdogSec=``.
"""

from __future__ import annotations

import math
from typing import Any

from keelrun.healthspec import Check, HealthPlan

SHELL = "/bin/sh"


def whole_seconds(seconds: float) -> int:
    """Kubernetes takes whole seconds, at least 1: round up, never down to 0."""
    return max(1, math.ceil(seconds))


def k8s_action(check: Check, port: int) -> dict[str, Any] | None:
    """The handler of a probe, or None for checks Kubernetes cannot make (log, notify)."""
    if check.kind == "port":
        return {"tcpSocket": {"port": port}}
    if check.kind == "http":
        return {"httpGet": {"path": check.path, "port": port}}
    if check.kind == "exec":
        return {"exec": {"command": [SHELL, "-c", check.command]}}
    return None


def readiness_probe(plan: HealthPlan, port: int) -> dict[str, Any] | None:
    action = k8s_action(plan.ready, port) if plan.ready is not None else None
    if action is None:
        return None
    return {
        **action,
        "periodSeconds": whole_seconds(plan.ready_interval),
        "timeoutSeconds": whole_seconds(plan.probe_timeout),
    }


def liveness_probe(plan: HealthPlan, port: int) -> dict[str, Any] | None:
    action = k8s_action(plan.health, port) if plan.health is not None else None
    if action is None:
        return None
    return {
        **action,
        "periodSeconds": whole_seconds(plan.health_interval),
        "timeoutSeconds": whole_seconds(plan.probe_timeout),
        "failureThreshold": plan.health_retries,
    }


def startup_probe(plan: HealthPlan, port: int) -> dict[str, Any] | None:
    """With a livenessProbe: hold it back until the app is up, for at most ready_timeout.

    The ready check when Kubernetes can make it, else the health check itself
    (keelrun in the pod still waits for a log or notify check on its own).
    """
    if liveness_probe(plan, port) is None:
        return None
    action = k8s_action(plan.ready, port) if plan.ready is not None else None
    if action is None:
        assert plan.health is not None
        action = k8s_action(plan.health, port)
    period = whole_seconds(plan.ready_interval)
    return {
        **action,  # type: ignore[dict-item]
        "periodSeconds": period,
        "timeoutSeconds": whole_seconds(plan.probe_timeout),
        "failureThreshold": max(1, math.ceil(plan.ready_timeout / period)),
    }


def container_port(port: int) -> dict[str, Any]:
    return {"name": "http", "containerPort": port, "protocol": "TCP"}


def container_fields(plan: HealthPlan, port: int) -> dict[str, Any]:
    """What a type's checks add to its container: probes, its port, and PORT for exec probes.

    The kubelet runs an exec probe in the container, not under keelrun, so the
    probe would not see the PORT keelrun gives the instance: it is set in the
    container's environment (keelrun's own base port comes from KEELRUN_PORT,
    which wins over PORT, so this changes nothing else).
    """
    fields: dict[str, Any] = {}
    for key, probe in (
        ("readinessProbe", readiness_probe(plan, port)),
        ("livenessProbe", liveness_probe(plan, port)),
        ("startupProbe", startup_probe(plan, port)),
    ):
        if probe is not None:
            fields[key] = probe
    if plan.uses_port:
        fields["ports"] = [container_port(port)]
    if any(c is not None and c.kind == "exec" for c in (plan.ready, plan.health)):
        fields["env"] = [{"name": "PORT", "value": str(port)}]
    return fields


def time_span(seconds: float) -> str:
    """A systemd time span: whole seconds, else milliseconds."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{max(1, round(seconds * 1000))}ms"


def systemd_service_lines(plan: HealthPlan) -> list[str]:
    """[Service] lines for the checks: Type=, NotifyAccess=, TimeoutStartSec=, WatchdogSec=."""
    notify = plan.ready is not None and plan.ready.kind == "notify"
    lines = ["Type=notify" if notify else "Type=simple"]
    if plan.uses_notify:
        lines.append("NotifyAccess=all")
    if notify:
        lines.append(f"TimeoutStartSec={time_span(plan.ready_timeout)}")
    if plan.watchdog is not None:
        lines.append(f"WatchdogSec={time_span(plan.watchdog)}")
    return lines
