"""`keelrun export kubernetes`: manifests checked field by field against the API's schema,
with the health checks as probes, a Service per served port and a Job for release."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import clean_environ, make_app, run_keelrun

# The subset of the Kubernetes API (apps/v1 Deployment, v1 ConfigMap and Secret)
# that an export may use: field -> type, or a nested schema. Names and types as
# in the API reference; anything else in the output fails the check.
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
LABEL_KEY = re.compile(r"([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
LABELS = ("map", str)
OBJECT_META = {"name": str, "labels": LABELS}
LOCAL_REF = {"name": str, "optional": bool}
PROBE = {
    "tcpSocket": {"port": int},
    "httpGet": {"path": str, "port": int},
    "exec": {"command": [str]},
    "periodSeconds": int,
    "initialDelaySeconds": int,
    "timeoutSeconds": int,
    "failureThreshold": int,
}
CONTAINER = {
    "name": str,
    "image": str,
    "command": [str],
    "args": [str],
    "env": [{"name": str, "value": str}],
    "envFrom": [{"configMapRef": LOCAL_REF, "secretRef": LOCAL_REF, "prefix": str}],
    "ports": [{"name": str, "containerPort": int, "protocol": str}],
    "readinessProbe": PROBE,
    "livenessProbe": PROBE,
    "startupProbe": PROBE,
}
POD_SPEC = {"terminationGracePeriodSeconds": int, "restartPolicy": str, "containers": [CONTAINER]}
SCHEMAS: dict[str, dict[str, Any]] = {
    "Deployment": {
        "apiVersion": str,
        "kind": str,
        "metadata": OBJECT_META,
        "spec": {
            "replicas": int,
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": OBJECT_META,
                "spec": POD_SPEC,
            },
        },
    },
    "Service": {
        "apiVersion": str,
        "kind": str,
        "metadata": OBJECT_META,
        "spec": {
            "selector": LABELS,
            "ports": [{"name": str, "port": int, "targetPort": (int, str), "protocol": str}],
        },
    },
    "Job": {
        "apiVersion": str,
        "kind": str,
        "metadata": OBJECT_META,
        "spec": {
            "backoffLimit": int,
            "template": {"metadata": OBJECT_META, "spec": POD_SPEC},
        },
    },
    "ConfigMap": {"apiVersion": str, "kind": str, "metadata": OBJECT_META, "data": ("map", str)},
    "Secret": {
        "apiVersion": str,
        "kind": str,
        "metadata": OBJECT_META,
        "type": str,
        "stringData": ("map", str),
    },
}
API_VERSIONS = {
    "Deployment": "apps/v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "Job": "batch/v1",
}


def check(value: Any, schema: Any, path: str) -> None:
    if isinstance(schema, dict):
        assert isinstance(value, dict), f"{path}: expected an object"
        for key, item in value.items():
            assert key in schema, f"{path}.{key}: not a field of this object"
            check(item, schema[key], f"{path}.{key}")
    elif isinstance(schema, list):
        assert isinstance(value, list), f"{path}: expected a list"
        for i, item in enumerate(value):
            check(item, schema[0], f"{path}[{i}]")
    elif isinstance(schema, tuple) and schema[0] != "map":  # (int, str): either type
        assert isinstance(value, schema) and not isinstance(value, bool), f"{path}: {value!r}"
    elif isinstance(schema, tuple):  # ("map", type): string keys to values of type
        assert isinstance(value, dict), f"{path}: expected a map"
        for key, item in value.items():
            assert isinstance(key, str) and isinstance(item, schema[1]), f"{path}.{key}"
    else:
        ok = isinstance(value, schema) and not (schema is int and isinstance(value, bool))
        assert ok, f"{path}: expected {schema.__name__}, got {value!r}"


def check_object(doc: dict[str, Any]) -> None:
    kind = doc["kind"]
    check(doc, SCHEMAS[kind], kind)
    assert doc["apiVersion"] == API_VERSIONS[kind]
    meta = doc["metadata"]
    assert DNS_LABEL.fullmatch(meta["name"]) and len(meta["name"]) <= 63
    for key, value in meta.get("labels", {}).items():
        assert LABEL_KEY.fullmatch(key)
        assert len(value) <= 63 and re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", value)
    if kind in ("Deployment", "Job"):
        spec = doc["spec"]
        if kind == "Deployment":
            assert spec["replicas"] >= 0
            template_labels = spec["template"]["metadata"]["labels"]
            assert spec["selector"]["matchLabels"].items() <= template_labels.items()
        else:
            assert spec["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
        for c in spec["template"]["spec"]["containers"]:
            assert DNS_LABEL.fullmatch(c["name"])
            for port in c.get("ports", []):
                assert 1 <= port["containerPort"] <= 65535 and port["protocol"] in ("TCP", "UDP")
                assert len(port["name"]) <= 15
            names = {p["name"] for p in c.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if probe in c:
                    handlers = {"tcpSocket", "httpGet", "exec"} & set(c[probe])
                    assert len(handlers) == 1, f"{probe}: exactly one handler"
                    port = c[probe].get("tcpSocket", c[probe].get("httpGet", {})).get("port")
                    assert port is None or port in {p["containerPort"] for p in c["ports"]}
                    assert c[probe]["periodSeconds"] >= 1 and c[probe]["timeoutSeconds"] >= 1
            assert all(len(n) <= 15 for n in names)


PROCFILE = (
    "web: gunicorn app:wsgi\n"
    "release: python manage.py migrate\n"
    "Queue_Worker: celery worker\n"
    "api: uvicorn api:app --port $PORT\n"
)
PYPROJECT = """
[tool.keelrun]
formation = "web=3"
timeout = 10
[tool.keelrun.processes.api]
ready = "port"
grace = 2
[tool.keelrun.processes.Queue_Worker]
ready = "log:ready"
"""
HEALTH = """
[tool.keelrun.processes.web]
ready = "notify"
health = "http:/health"
health_interval = 15
health_retries = 4
probe_timeout = 1.5
ready_timeout = 30
[tool.keelrun.processes.api]
ready = "http:/ready"
ready_interval = 2
[tool.keelrun.processes.Queue_Worker]
health = "exec:celery inspect ping -d celery@$HOSTNAME"
"""
ENV = "SECRET_KEY=s3cret\nDATABASE_URL=postgres://u:p@db/x\n"


def export(root: Path, *args: str) -> dict[str, dict[str, Any]]:
    out = root.parent / "k8s"
    r = run_keelrun("export", "kubernetes", str(out), *args, cwd=root)
    assert r.returncode == 0, r.stderr
    docs = {}
    for path in sorted(out.glob("*.yaml")):
        loaded = list(yaml.safe_load_all(path.read_text()))
        assert len(loaded) == 1
        check_object(loaded[0])
        docs[path.name] = loaded[0]
    return docs


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_app(tmp_path / "My_Shop", PROCFILE, env=ENV, pyproject=PYPROJECT)


def test_one_deployment_per_type_and_a_config_map(root: Path) -> None:
    docs = export(root)
    assert sorted(docs) == [
        "my-shop-api-deployment.yaml",
        "my-shop-api-service.yaml",
        "my-shop-configmap.yaml",
        "my-shop-queue-worker-deployment.yaml",
        "my-shop-release-job.yaml",
        "my-shop-web-deployment.yaml",
        "my-shop-web-service.yaml",
    ]
    web = docs["my-shop-web-deployment.yaml"]
    assert web["metadata"]["name"] == "my-shop-web"
    assert web["spec"]["replicas"] == 3
    pod = web["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > 10
    (c,) = pod["containers"]
    assert c["command"] == ["keelrun", "start", "web"]
    assert c["image"] == "my-shop:latest"
    assert c["ports"] == [{"name": "http", "containerPort": 5000, "protocol": "TCP"}]
    assert "readinessProbe" not in c
    assert c["envFrom"] == [
        {"secretRef": {"name": "my-shop-env", "optional": False}},
        {"configMapRef": {"name": "my-shop-config"}},
    ]
    config = docs["my-shop-configmap.yaml"]
    assert config["metadata"]["name"] == "my-shop-config"
    assert config["data"] == {
        "KEELRUN_PORT": "5000",
        "KEELRUN_LOG_FORMAT": "json",
        "KEELRUN_FORMATION": "all=1",
    }


def test_ready_port_type_gets_its_port_and_a_readiness_probe(root: Path) -> None:
    docs = export(root, "-p", "8000")
    api = docs["my-shop-api-deployment.yaml"]["spec"]["template"]["spec"]
    (c,) = api["containers"]
    # api is the 4th type (release counts): 8000 + 300, as keelrun start gives it.
    assert c["ports"][0]["containerPort"] == 8300
    assert c["readinessProbe"]["tcpSocket"] == {"port": 8300}
    service = docs["my-shop-api-service.yaml"]
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8300, "targetPort": "http", "protocol": "TCP"}
    ]
    assert (
        service["spec"]["selector"]
        == docs["my-shop-api-deployment.yaml"]["spec"]["selector"]["matchLabels"]
    )
    assert api["terminationGracePeriodSeconds"] == 2 + 5
    worker = docs["my-shop-queue-worker-deployment.yaml"]["spec"]["template"]["spec"]
    assert worker["containers"][0]["name"] == "queue-worker"
    assert worker["containers"][0]["command"] == ["keelrun", "start", "Queue_Worker"]
    assert "ports" not in worker["containers"][0]
    assert docs["my-shop-configmap.yaml"]["data"]["KEELRUN_PORT"] == "8000"


def test_checks_become_probes(tmp_path: Path) -> None:
    root = make_app(tmp_path / "My_Shop", PROCFILE, pyproject=HEALTH)
    docs = export(root)

    def container(name: str) -> dict[str, Any]:
        return docs[f"my-shop-{name}-deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]

    web, api, worker = container("web"), container("api"), container("queue-worker")
    # notify has no Kubernetes equivalent: keelrun in the pod waits for it.
    assert "readinessProbe" not in web
    assert web["livenessProbe"] == {
        "httpGet": {"path": "/health", "port": 5000},
        "periodSeconds": 15,
        "timeoutSeconds": 2,
        "failureThreshold": 4,
    }
    # Liveness starts once the app is up: a startupProbe holds it back for ready_timeout.
    assert web["startupProbe"]["httpGet"] == {"path": "/health", "port": 5000}
    assert web["startupProbe"]["failureThreshold"] == 30  # ready_timeout / 1 s periods
    assert api["readinessProbe"] == {
        "httpGet": {"path": "/ready", "port": 5300},
        "periodSeconds": 2,
        "timeoutSeconds": 2,
    }
    assert api["ports"] == [{"name": "http", "containerPort": 5300, "protocol": "TCP"}]
    assert worker["livenessProbe"]["exec"] == {
        "command": ["/bin/sh", "-c", "celery inspect ping -d celery@$HOSTNAME"]
    }
    assert worker["env"] == [{"name": "PORT", "value": "5200"}]
    assert "ports" not in worker and "my-shop-queue-worker-service.yaml" not in docs


def test_release_is_a_job_with_the_same_image_and_environment(root: Path) -> None:
    docs = export(root, "--image", "registry.example/shop:1.2")
    job = docs["my-shop-release-job.yaml"]
    assert job["metadata"]["name"] == "my-shop-release"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "release"
    pod = job["spec"]["template"]["spec"]
    assert (pod["restartPolicy"], job["spec"]["backoffLimit"]) == ("Never", 0)
    (c,) = pod["containers"]
    web = docs["my-shop-web-deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["keelrun", "release"]
    assert (c["image"], c["envFrom"]) == (web["image"], web["envFrom"])
    assert "ports" not in c and "readinessProbe" not in c


def test_env_values_appear_only_with_include_env(root: Path) -> None:
    without = export(root)
    assert all("s3cret" not in yaml.safe_dump(d) for d in without.values())
    out = root.parent / "k8s"
    with_env = export(root, "--include-env", "--image", "registry.example/shop:1.2")
    secret = with_env["my-shop-secret.yaml"]
    assert secret["metadata"]["name"] == "my-shop-env"
    assert secret["stringData"] == {"SECRET_KEY": "s3cret", "DATABASE_URL": "postgres://u:p@db/x"}
    assert (out / "my-shop-secret.yaml").stat().st_mode & 0o777 == 0o600
    web = with_env["my-shop-web-deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert web["image"] == "registry.example/shop:1.2"


def test_secret_reference_is_optional_when_the_app_has_no_env(tmp_path: Path) -> None:
    root = make_app(tmp_path / "svc", "web: serve\n")
    docs = export(root, "--app", "Billing Service")
    (c,) = docs["billing-service-web-deployment.yaml"]["spec"]["template"]["spec"]["containers"]
    assert c["envFrom"][0] == {"secretRef": {"name": "billing-service-env", "optional": True}}


def test_schema_check_rejects_a_wrong_field_negative_control(root: Path) -> None:
    doc = export(root)["my-shop-web-deployment.yaml"]
    doc["spec"]["template"]["spec"]["containers"][0]["containerPort"] = 5000
    with pytest.raises(AssertionError, match="not a field"):
        check_object(doc)
    doc = export(root)["my-shop-web-deployment.yaml"]
    doc["spec"]["replicas"] = "3"
    with pytest.raises(AssertionError, match="expected int"):
        check_object(doc)


# `${VAR}` fills in from the files only; a variable they do not define stays as written.
REFERENCES = 'APP=demo\nGREETING="hi ${HOME}"\nFULL=${APP}-x\nDEF=${NOPE:-fall back}\n'
EXPORTING_SHELL = {"HOME": "/home/exporter", "NOPE": "from-shell", "APP": "from-shell"}
FROM_FILES_ONLY = {
    "APP": "demo",
    "GREETING": "hi ${HOME}",
    "FULL": "demo-x",
    "DEF": "${NOPE:-fall back}",
}


def test_include_env_never_takes_values_from_the_exporting_shell(tmp_path: Path) -> None:
    root = make_app(tmp_path / "app", "web: serve\n", env=REFERENCES)
    out = tmp_path / "k8s"
    env = clean_environ(**EXPORTING_SHELL)
    r = run_keelrun("export", "kubernetes", str(out), "--include-env", cwd=root, env=env)
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load((out / "app-secret.yaml").read_text())["stringData"] == FROM_FILES_ONLY
    assert r.stderr.splitlines() == [
        f"keelrun: warning: {root / '.env'}:2: GREETING refers to ${{HOME}}, which no .env"
        " file defines; kept as written",
        f"keelrun: warning: {root / '.env'}:4: DEF refers to ${{NOPE}}, which no .env"
        " file defines; kept as written",
    ]
    # Without --include-env no value is written, and nothing to warn about.
    r = run_keelrun("export", "kubernetes", str(tmp_path / "bare"), cwd=root, env=env)
    assert (r.returncode, r.stderr) == (0, "")


def test_a_command_that_names_port_gets_its_container_port(tmp_path: Path) -> None:
    root = make_app(
        tmp_path / "shop",
        "web: gunicorn app --bind 0.0.0.0:$PORT\n"
        "files: python3 -m http.server ${PORT:-8000}\n"
        "worker: python3 worker.py --ports $PORTS\n",
    )
    docs = export(root)
    files = docs["shop-files-deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert files["ports"] == [{"name": "http", "containerPort": 5100, "protocol": "TCP"}]
    assert "shop-files-service.yaml" in docs
    worker = docs["shop-worker-deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert "ports" not in worker and "shop-worker-service.yaml" not in docs
