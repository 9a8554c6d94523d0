"""``keelrun export kubernetes``: a ConfigMap, a Deployment per type, a Service per type
that serves its port, a Job for ``release``, and a Secret with --include-env.

Each pod runs one instance: ``keelrun start TYPE`` as the container's command,
with ``KEELRUN_FORMATION=all=1`` from the ConfigMap; the Deployment's replicas
carry the formation's count. keelrun in the pod gives the type the same PORT as
on a laptop (base port + 100 x its Procfile position), so containerPort, the
probes (export/probes.py) and the Service use that port. The .env values belong
in the Secret ``<app>-env``: written here only with --include-env, otherwise the
operator creates it (the reference is then optional only if the app had no .env
values). The release Job runs ``keelrun release`` once per deploy, before the
Deployments roll (docs/deploying.md says how).
"""

from __future__ import annotations

import re
from typing import Any

from keelrun.errors import InputError
from keelrun.export.names import DNS_LABEL_MAX, dns_label
from keelrun.export.output import SECRET_MODE, OutputFile
from keelrun.export.plan import ExportPlan, grace_seconds
from keelrun.export.probes import container_fields, container_port
from keelrun.export.yamltext import dump
from keelrun.settings import ProcessTypeSettings

# Time the kubelet grants beyond keelrun's own grace: keelrun must finish its
# stop (signal, grace, SIGKILL, exit) before the kubelet's SIGKILL arrives.
KUBELET_MARGIN = 5
MANAGED_BY = {"app.kubernetes.io/managed-by": "keelrun"}


# A command that names $PORT or ${PORT} (${PORT:-5000} too) listens on it.
_NAMES_PORT = re.compile(r"\$(?:PORT\b|\{PORT[}:\-=?+])")


def exposes_port(t: ProcessTypeSettings) -> bool:
    """web types serve HTTP (Heroku's convention); a command that names $PORT, and
    a port or http check, listen too."""
    return t.name == "web" or t.plan.uses_port or _NAMES_PORT.search(t.command) is not None


def config_map(plan: ExportPlan, app: str) -> dict[str, Any]:
    data = {
        "KEELRUN_PORT": str(plan.settings.port),
        "KEELRUN_LOG_FORMAT": "json",
        # One instance per pod: the Deployment's replicas are the formation.
        "KEELRUN_FORMATION": "all=1",
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{app}-config",
            "labels": {"app.kubernetes.io/name": app, **MANAGED_BY},
        },
        "data": data,
    }


def secret(plan: ExportPlan, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{app}-env", "labels": {"app.kubernetes.io/name": app, **MANAGED_BY}},
        "type": "Opaque",
        "stringData": dict(plan.env_values),
    }


def names(plan: ExportPlan, app: str, t: ProcessTypeSettings) -> tuple[str, dict[str, str]]:
    """The object name ``<app>-<type>`` and the labels that select the type's pods."""
    component = dns_label(t.name, where=f"{plan.settings.procfile}: {t.name}")
    name = f"{app}-{component}"
    if len(name) > DNS_LABEL_MAX:
        raise InputError(
            "--app", f"{name!r} is longer than {DNS_LABEL_MAX} characters; use a shorter --app"
        )
    return name, {"app.kubernetes.io/name": app, "app.kubernetes.io/component": component}


def container(plan: ExportPlan, app: str, t: ProcessTypeSettings, command: str) -> dict[str, Any]:
    return {
        "name": dns_label(t.name, where=f"{plan.settings.procfile}: {t.name}"),
        "image": plan.image or f"{app}:latest",
        "command": ["keelrun", command] + ([t.name] if command == "start" else []),
        "envFrom": [
            {"secretRef": {"name": f"{app}-env", "optional": not plan.env_values}},
            # Last, so keelrun's own settings win over a same-named .env variable.
            {"configMapRef": {"name": f"{app}-config"}},
        ],
    }


def deployment(plan: ExportPlan, app: str, t: ProcessTypeSettings) -> dict[str, Any]:
    name, selector = names(plan, app, t)
    spec = container(plan, app, t, "start")
    # The checks as probes, the port they use, PORT for exec probes (export/probes.py).
    spec.update(container_fields(t.plan, t.base_port))
    if exposes_port(t):
        spec.setdefault("ports", [container_port(t.base_port)])
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {**selector, **MANAGED_BY}},
        "spec": {
            "replicas": t.count,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**selector, **MANAGED_BY}},
                "spec": {
                    "terminationGracePeriodSeconds": grace_seconds(t) + KUBELET_MARGIN,
                    "containers": [spec],
                },
            },
        },
    }


def service(plan: ExportPlan, app: str, t: ProcessTypeSettings) -> dict[str, Any]:
    """A ClusterIP Service on the type's port, for a type that serves it."""
    name, selector = names(plan, app, t)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {**selector, **MANAGED_BY}},
        "spec": {
            "selector": selector,
            "ports": [
                {"name": "http", "port": t.base_port, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def release_job(plan: ExportPlan, app: str, t: ProcessTypeSettings) -> dict[str, Any]:
    """``keelrun release`` once, to completion; never retried (a migration that failed
    wants a person, as under ``keelrun start --release``)."""
    name, selector = names(plan, app, t)
    labels = {**selector, **MANAGED_BY}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": grace_seconds(t) + KUBELET_MARGIN,
                    "containers": [container(plan, app, t, "release")],
                },
            },
        },
    }


def render(plan: ExportPlan) -> list[OutputFile]:
    app = dns_label(plan.app)
    files = [OutputFile(f"{app}-configmap.yaml", dump(config_map(plan, app)))]
    seen: dict[str, str] = {}
    for t in plan.settings.types:
        doc = deployment(plan, app, t)
        component = doc["metadata"]["labels"]["app.kubernetes.io/component"]
        if component in seen:
            raise InputError(
                str(plan.settings.procfile),
                f"types {seen[component]!r} and {t.name!r} share the Kubernetes name {component!r}",
            )
        seen[component] = t.name
        files.append(OutputFile(f"{app}-{component}-deployment.yaml", dump(doc)))
        if exposes_port(t):
            files.append(OutputFile(f"{app}-{component}-service.yaml", dump(service(plan, app, t))))
    release = plan.settings.release
    if release is not None:
        files.append(OutputFile(f"{app}-release-job.yaml", dump(release_job(plan, app, release))))
    if plan.include_env:
        files.append(OutputFile(f"{app}-secret.yaml", dump(secret(plan, app)), SECRET_MODE))
    return files
