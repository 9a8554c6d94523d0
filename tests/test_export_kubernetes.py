"""`keelrun export kubernetes`: manifests checked field by field against the API's schema."""

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
    "envFrom": [{"configMapRef": LOCAL_REF, "secretRef": LOCAL_REF, "prefix": str}],
    "ports": [{"name": str, "containerPort": int, "protocol": str}],
    "readinessProbe": PROBE,
}
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
                "spec": {"terminationGracePeriodSeconds": int, "containers": [CONTAINER]},
            },
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
API_VERSIONS = {"Deployment": "apps/v1", "ConfigMap": "v1", "Secret": "v1"}


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
    if kind == "Deployment":
        spec = doc["spec"]
        assert spec["replicas"] >= 0
        template_labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= template_labels.items()
        for c in spec["template"]["spec"]["containers"]:
            assert DNS_LABEL.fullmatch(c["name"])
            for port in c.get("ports", []):
                assert 1 <= port["containerPort"] <= 65535 and port["protocol"] in ("TCP", "UDP")
                assert len(port["name"]) <= 15


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
        "my-shop-configmap.yaml",
        "my-shop-queue-worker-deployment.yaml",
        "my-shop-web-deployment.yaml",
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
    assert api["terminationGracePeriodSeconds"] == 2 + 5
    worker = docs["my-shop-queue-worker-deployment.yaml"]["spec"]["template"]["spec"]
    assert worker["containers"][0]["name"] == "queue-worker"
    assert worker["containers"][0]["command"] == ["keelrun", "start", "Queue_Worker"]
    assert "ports" not in worker["containers"][0]
    assert docs["my-shop-configmap.yaml"]["data"]["KEELRUN_PORT"] == "8000"


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
