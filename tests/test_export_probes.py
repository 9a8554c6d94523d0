"""The exports' probes: Kubernetes probe objects checked against the API's fields, and
systemd lines checked by systemd-analyze itself."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_export_kubernetes import CONTAINER, PROBE, check

from keelrun.export.probes import (
    container_fields,
    k8s_action,
    liveness_probe,
    readiness_probe,
    startup_probe,
    systemd_service_lines,
    time_span,
    whole_seconds,
)
from keelrun.healthspec import Check, HealthPlan

# The Probe and Container fields of the Kubernetes API (core/v1) that probes use.
FULL_PROBE = {
    **PROBE,
    "httpGet": {"path": str, "port": int, "scheme": str, "host": str},
    "exec": {"command": [str]},
    "successThreshold": int,
}
FULL_CONTAINER = {
    **CONTAINER,
    "readinessProbe": FULL_PROBE,
    "livenessProbe": FULL_PROBE,
    "startupProbe": FULL_PROBE,
    "env": [{"name": str, "value": str}],
}
HANDLERS = ("tcpSocket", "httpGet", "exec")

PORT = Check("port")
HTTP = Check("http", path="/health")
EXEC = Check("exec", command='pg_isready -h "$DB_HOST"')
LOG = Check("log", pattern="Listening at")
NOTIFY = Check("notify")


def valid_container(fields: dict[str, Any]) -> dict[str, Any]:
    container = {"name": "web", "image": "app:1", "command": ["keelrun", "start", "web"], **fields}
    check(container, FULL_CONTAINER, "container")
    for key in ("readinessProbe", "livenessProbe", "startupProbe"):
        if key in container:
            probe = container[key]
            assert sum(h in probe for h in HANDLERS) == 1, f"{key}: exactly one handler"
            for field in ("periodSeconds", "timeoutSeconds", "failureThreshold"):
                assert probe.get(field, 1) >= 1, f"{key}.{field} must be >= 1"
    return container


def test_actions() -> None:
    assert k8s_action(PORT, 5000) == {"tcpSocket": {"port": 5000}}
    assert k8s_action(HTTP, 5100) == {"httpGet": {"path": "/health", "port": 5100}}
    assert k8s_action(EXEC, 5000) == {
        "exec": {"command": ["/bin/sh", "-c", 'pg_isready -h "$DB_HOST"']}
    }
    assert k8s_action(LOG, 5000) is None and k8s_action(NOTIFY, 5000) is None


def test_whole_seconds_round_up_never_to_zero() -> None:
    assert [whole_seconds(s) for s in (0.5, 1, 1.2, 10)] == [1, 1, 2, 10]


def test_readiness_probe_with_the_defaults() -> None:
    assert readiness_probe(HealthPlan(ready=PORT), 5000) == {
        "tcpSocket": {"port": 5000},
        "periodSeconds": 1,  # ready_interval 0.5 s
        "timeoutSeconds": 2,
    }
    assert readiness_probe(HealthPlan(ready=LOG), 5000) is None
    assert readiness_probe(HealthPlan(ready=NOTIFY), 5000) is None
    assert readiness_probe(HealthPlan(), 5000) is None


def test_liveness_probe_carries_interval_timeout_and_retries() -> None:
    plan = HealthPlan(health=HTTP, health_interval=15, probe_timeout=3.5, health_retries=4)
    assert liveness_probe(plan, 5000) == {
        "httpGet": {"path": "/health", "port": 5000},
        "periodSeconds": 15,
        "timeoutSeconds": 4,
        "failureThreshold": 4,
    }


def test_startup_probe_holds_liveness_back_for_ready_timeout() -> None:
    plan = HealthPlan(ready=HTTP, health=EXEC, ready_interval=2, ready_timeout=61)
    assert startup_probe(plan, 5000) == {
        "httpGet": {"path": "/health", "port": 5000},
        "periodSeconds": 2,
        "timeoutSeconds": 2,
        "failureThreshold": 31,
    }
    # ready = notify cannot be probed: the health check stands in, for as long
    notify = HealthPlan(ready=NOTIFY, health=PORT, ready_timeout=30)
    assert startup_probe(notify, 5000) == {
        "tcpSocket": {"port": 5000},
        "periodSeconds": 1,
        "timeoutSeconds": 2,
        "failureThreshold": 30,
    }
    assert startup_probe(HealthPlan(ready=HTTP), 5000) is None  # no liveness to hold back


@pytest.mark.parametrize(
    "plan",
    [
        HealthPlan(),
        HealthPlan(ready=PORT),
        HealthPlan(ready=HTTP, health=HTTP),
        HealthPlan(ready=EXEC, health=PORT, ready_interval=0.2, probe_timeout=0.3),
        HealthPlan(ready=NOTIFY, health=EXEC, watchdog=10),
        HealthPlan(ready=LOG, health=HTTP),
    ],
)
def test_containers_pass_the_schema_check(plan: HealthPlan) -> None:
    valid_container(container_fields(plan, 5300))


def test_container_fields() -> None:
    assert container_fields(HealthPlan(), 5000) == {}
    assert container_fields(HealthPlan(ready=LOG), 5000) == {}
    web = container_fields(HealthPlan(ready=PORT, health=HTTP), 5300)
    assert web["ports"] == [{"name": "http", "containerPort": 5300, "protocol": "TCP"}]
    assert set(web) == {"readinessProbe", "livenessProbe", "startupProbe", "ports"}
    worker = container_fields(HealthPlan(health=EXEC), 5100)
    assert "ports" not in worker
    assert worker["env"] == [{"name": "PORT", "value": "5100"}]  # the exec probe's $PORT


def test_systemd_lines() -> None:
    assert systemd_service_lines(HealthPlan()) == ["Type=simple"]
    assert systemd_service_lines(HealthPlan(ready=PORT, health=HTTP)) == ["Type=simple"]
    assert systemd_service_lines(HealthPlan(ready=NOTIFY)) == [
        "Type=notify",
        "NotifyAccess=all",
        "TimeoutStartSec=60s",
    ]
    assert systemd_service_lines(HealthPlan(ready=NOTIFY, watchdog=2.5, ready_timeout=90)) == [
        "Type=notify",
        "NotifyAccess=all",
        "TimeoutStartSec=90s",
        "WatchdogSec=2500ms",
    ]
    assert systemd_service_lines(HealthPlan(watchdog=30)) == [
        "Type=simple",
        "NotifyAccess=all",
        "WatchdogSec=30s",
    ]
    assert time_span(0.0001) == "1ms"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize(
    "plan",
    [HealthPlan(ready=NOTIFY, watchdog=2.5, ready_timeout=0.5), HealthPlan(watchdog=30)],
)
def test_systemd_accepts_the_lines(tmp_path: Path, plan: HealthPlan) -> None:
    unit = tmp_path / "probe-test.service"
    unit.write_text(
        "[Unit]\nDescription=probe lines\n\n[Service]\n"
        + "\n".join(systemd_service_lines(plan))
        + "\nExecStart=/bin/sh -c 'exec sleep 1'\n"
    )
    r = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", unit.name],
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert "probe-test.service" not in r.stderr, r.stderr
