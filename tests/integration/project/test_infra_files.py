"""The deployment files under infra/, checked statically (no container engine here):
compose.yaml against the Compose Specification's JSON schema, every Kubernetes manifest against
the Kubernetes API's JSON schemas (strict: an unknown field is an error), and the rules the
platform holds them to: images pinned, no secret written down, ports published on loopback only,
probes, limits and an unprivileged user on every container, the image holding every package.

The schemas come with dev dependencies, so this runs offline: check-jsonschema vendors the
compose-spec schema, kubernetes-validate the Kubernetes schemas of each minor release.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
INFRA = REPO / "infra"
K8S = INFRA / "k8s"
KUBERAY = INFRA / "kuberay"  # custom resources of the KubeRay operator (ray.io/v1)
KUBERNETES_VERSION = "1.37.0"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
WHEEL = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
PLATFORM_IMAGE = f"mlops-template:{PYPROJECT['project']['version']}"
DOCKERFILES = ("Dockerfile", "mlflow.Dockerfile")

# An environment variable with one of these in its name holds a secret (a DSN carries one).
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|AUTH|DSN")
# ... except the name of an account, which may have a default.
ACCOUNT_NAME = re.compile(r"USER(NAME)?$")
# `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?message}`, `${NAME?message}`.
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")
# The password of a URL: scheme://user:PASSWORD@host.
URL_PASSWORD = re.compile(r"://[^/@\s:]*:(?P<password>[^@\s]+)@")
# What a password in compose.yaml must be: an interpolation, e.g. `${POSTGRES_PASSWORD}`.
INTERPOLATED = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
# An exact release at least down to the minor version (`16.10`, `v3.17.2`, `3.8.8-python3.11`).
VERSION_TAG = re.compile(r"^v?\d+\.\d+")


@cache
def _compose() -> dict[str, Any]:
    return yaml.safe_load((INFRA / "compose.yaml").read_text())


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment in either form compose allows (mapping, or NAME=value list)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {name: str(value) for name, value in env.items()}


@cache
def _manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in [*sorted(K8S.glob("*.yaml")), *sorted(KUBERAY.glob("*.yaml"))]:
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                name = f"{document['kind']}/{document['metadata']['name']}"
                found.append((f"{path.name}:{name}", document))
    return found


def _ray_pod_templates(cluster: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(group, pod template) of a KubeRay RayCluster: the head's, then each worker group's."""
    yield "head", cluster["spec"]["headGroupSpec"]["template"]
    for group in cluster["spec"]["workerGroupSpecs"]:
        yield group["groupName"], group["template"]


def _pod_specs() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, kind, pod spec) of every workload."""
    for where, document in _manifests():
        if document["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield where, document["kind"], document["spec"]["template"]["spec"]
        elif document["kind"] == "CronJob":
            yield where, "CronJob", document["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif document["kind"] == "RayCluster":
            for group, template in _ray_pod_templates(document):
                yield f"{where}/{group}", "RayCluster", template["spec"]


def _containers() -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(where, workload kind, pod spec, container) of every container, init containers too."""
    for where, kind, pod in _pod_specs():
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            yield f"{where}/{container['name']}", kind, pod, container


def _image_tag(image: str) -> str | None:
    """The tag of an image reference (None without one); a digest counts as a tag."""
    if "@sha256:" in image:
        return image.split("@", 1)[1]
    name = image.rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name else None


def _unpinned(image: str) -> str | None:
    """Why an image reference is not pinned to an exact release, or None if it is."""
    tag = _image_tag(image)
    if tag is None:
        return f"{image}: no tag (means latest)"
    if tag.startswith("sha256:"):
        return None
    if "latest" in tag or not VERSION_TAG.match(tag):
        return f"{image}: not an exact version"
    return None


def _locked_version(package: str) -> str:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    (version,) = [p["version"] for p in lock["package"] if p["name"] == package]
    return version


def _dockerfile(name: str) -> list[list[str]]:
    """A Dockerfile's instructions as word lists, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (INFRA / name).read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [line.split() for line in lines if line and not line.startswith("#")]


# --- compose.yaml


def test_the_compose_file_follows_the_compose_specification() -> None:
    from importlib.resources import files

    import jsonschema

    schema_file = files("check_jsonschema").joinpath("builtin_schemas/vendor/compose-spec.json")
    schema = json.loads(schema_file.read_text())
    assert schema["title"] == "Compose Specification"
    validator = jsonschema.Draft202012Validator(schema)
    errors = [
        f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(_compose())
    ]
    assert errors == []
    expected = {"postgres", "redis", "prefect-migrate", "prefect", "mlflow", "deploy", "worker"}
    assert set(_services()) == expected | {"serving"}


def test_compose_images_are_pinned_and_the_servers_match_the_locked_clients() -> None:
    images = {name: service.get("image", "") for name, service in _services().items()}
    assert [_unpinned(image) for image in images.values() if _unpinned(image)] == []
    # Built here: the platform's image carries pyproject's version.
    for name, service in _services().items():
        if service.get("build", {}).get("dockerfile") == "infra/Dockerfile":
            assert images[name] == PLATFORM_IMAGE, name
    assert {"deploy", "worker", "serving"} <= {n for n, i in images.items() if i == PLATFORM_IMAGE}
    # Prefect's client and server must agree (the event socket's protocol changes).
    assert images["prefect"] == f"prefecthq/prefect:{_locked_version('prefect')}-python3.11"
    assert images["prefect-migrate"] == images["prefect"]
    assert _services()["mlflow"]["build"]["dockerfile"] == "infra/mlflow.Dockerfile"


def test_no_secret_is_written_in_the_compose_file() -> None:
    problems = []
    for name, service in _services().items():
        for variable, value in _environment(service).items():
            where = f"{name}: {variable}"
            # `${NAME:?a message}` -> `${NAME}`: a message may hold anything, spaces included.
            value = INTERPOLATION.sub(lambda m: "${" + m["name"] + "}", value)
            password = URL_PASSWORD.search(value)
            if password and not INTERPOLATED.fullmatch(password["password"]):
                problems.append(f"{where}: a URL with a literal password")
            if SECRET_NAME.search(variable) and not (INTERPOLATED.fullmatch(value) or password):
                problems.append(f"{where}: not from the environment (${{...}})")
    # A secret has no default: compose refuses to start without it (`${NAME:?message}`).
    for match in INTERPOLATION.finditer((INFRA / "compose.yaml").read_text()):
        name, op = match["name"], match["op"] or ""
        if SECRET_NAME.search(name) and not ACCOUNT_NAME.search(name) and "?" not in op:
            problems.append(f"${{{name}}} is not required (`:?`): {match[0]}")
    assert problems == []


def test_the_compose_file_publishes_ports_on_loopback_only() -> None:
    published = []
    for name, service in _services().items():
        assert service.get("network_mode") != "host", name
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            published.append((name, host_ip))
    assert published, "nothing published: the UIs and the service would be unreachable"
    assert [p for p in published if p[1] != "127.0.0.1"] == []


def test_compose_starts_each_step_after_what_it_needs() -> None:
    services = _services()
    migrate, prefect = services["prefect-migrate"], services["prefect"]
    assert migrate["command"] == ["prefect", "server", "database", "upgrade", "-y"]
    assert prefect["depends_on"]["prefect-migrate"]["condition"] == "service_completed_successfully"
    assert _environment(prefect)["PREFECT_API_DATABASE_MIGRATE_ON_START"] == "false"
    for name in ("prefect-migrate", "prefect"):
        assert _environment(services[name])["PREFECT_API_DATABASE_CONNECTION_URL"].startswith(
            "postgresql+asyncpg://"
        )
    assert services["worker"]["depends_on"]["deploy"]["condition"] == (
        "service_completed_successfully"
    )
    mlflow = services["mlflow"]
    assert "--serve-artifacts" in mlflow["command"]
    assert any(arg.startswith("--allowed-hosts=") for arg in mlflow["command"])
    assert _environment(mlflow)["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")
    assert "/readyz" in " ".join(services["serving"]["healthcheck"]["test"])
    assert _environment(services["serving"])["MLOPS_SERVING__HOST"] == "0.0.0.0"
    # Nothing is installed when a container starts: images are built, pinned, once.
    commands = " ".join(json.dumps(s.get("command", "")) for s in services.values())
    assert "pip install" not in commands


def test_every_variable_compose_reads_is_in_its_env_example() -> None:
    used = {m["name"] for m in INTERPOLATION.finditer((INFRA / "compose.yaml").read_text())}
    example = _env_file_names(INFRA / ".env.example")
    assert used - example == set()
    assert example - used == set()


# --- Dockerfiles


def test_the_image_holds_every_package_of_the_wheel_and_runs_unprivileged() -> None:
    instructions = _dockerfile("Dockerfile")
    copied = {
        source.rstrip("/")
        for words in instructions
        if words[0] == "COPY" and not any(w.startswith("--from") for w in words)
        for source in words[1:-1]
        if not source.startswith("--")
    }
    # The packages, the files the wheel force-includes, and what `uv sync` needs.
    needed = {*WHEEL["packages"], *WHEEL["force-include"], "pyproject.toml", "uv.lock"}
    needed.add(PYPROJECT["project"]["readme"])
    assert needed - copied == set()
    assert [w for w in instructions if w[0] == "RUN" and "uv" in w and "sync" in w]
    assert all("--frozen" in w for w in instructions if w[0] == "RUN" and "sync" in w)
    users = [w[1] for w in instructions if w[0] == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_dockerfile_base_images_are_exact_releases() -> None:
    bases = {name: [w[1] for w in _dockerfile(name) if w[0] == "FROM"] for name in DOCKERFILES}
    for name, images in bases.items():
        assert images, name
        for image in images:
            tag = _image_tag(image) or ""
            assert re.match(r"^v?\d+\.\d+\.\d+", tag) or tag.startswith("sha256:"), image
    # MLflow's server is the release the platform's client is locked to, with the locked driver.
    assert bases["mlflow.Dockerfile"] == [f"ghcr.io/mlflow/mlflow:v{_locked_version('mlflow')}"]
    installs = " ".join(" ".join(w) for w in _dockerfile("mlflow.Dockerfile") if w[0] == "RUN")
    assert f"psycopg2-binary=={_locked_version('psycopg2-binary')}" in installs
    assert re.search(r"Flask-WTF==\d", installs)


# --- Kubernetes


def test_kubernetes_manifests_follow_the_api_schemas() -> None:
    import kubernetes_validate

    kinds = set()
    problems = []
    for where, document in _manifests():
        kinds.add(document["kind"])
        if document["kind"] == "RayCluster":  # a custom resource: its pods follow the API's
            problems += _ray_cluster_problems(where, document)
            continue
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            problems.append(f"{where}: {'.'.join(map(str, err.path))}: {err.message}")
        except kubernetes_validate.SchemaNotFoundError as err:
            problems.append(f"{where}: {err.message}")
    assert problems == []
    assert {"Namespace", "ConfigMap", "Secret", "Deployment", "Service", "RayCluster"} <= kinds


def _ray_cluster_problems(where: str, cluster: dict[str, Any]) -> list[str]:
    """A RayCluster against what KubeRay's ray.io/v1 accepts here: its Ray the locked one, and
    each group's pod template a valid Kubernetes PodTemplate (strict)."""
    import kubernetes_validate

    problems = []
    if cluster["apiVersion"] != "ray.io/v1":
        problems.append(f"{where}: apiVersion {cluster['apiVersion']}, not ray.io/v1")
    if cluster["spec"].get("rayVersion") != _locked_version("ray"):
        problems.append(f"{where}: rayVersion is not uv.lock's ray {_locked_version('ray')}")
    for group, template in _ray_pod_templates(cluster):
        pod_template = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": f"{cluster['metadata']['name']}-{group}"},
            "template": template,
        }
        try:
            kubernetes_validate.validate(pod_template, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            problems.append(f"{where}/{group}: {'.'.join(map(str, err.path))}: {err.message}")
    return problems


def test_kubernetes_images_are_pinned() -> None:
    images = {where: container["image"] for where, _, _, container in _containers()}
    assert images
    assert [_unpinned(image) for image in images.values() if _unpinned(image)] == []
    assert {image for image in images.values() if image.startswith("mlops-template")} == {
        PLATFORM_IMAGE
    }


def test_kubernetes_containers_have_probes_limits_and_no_privileges() -> None:
    problems = []
    for where, kind, pod, container in _containers():
        if kind in ("Deployment", "StatefulSet", "DaemonSet"):
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in container:
                    problems.append(f"{where}: no {probe}")
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(bound, {}))
            if missing:
                problems.append(f"{where}: no {bound} for {sorted(missing)}")
        pod_context, context = pod.get("securityContext", {}), container.get("securityContext", {})
        if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
            problems.append(f"{where}: may run as root")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: privilege escalation allowed")
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: writable root filesystem")
        if "ALL" not in context.get("capabilities", {}).get("drop", []):
            problems.append(f"{where}: keeps Linux capabilities")
    assert problems == []
    (serving,) = [c for w, _, _, c in _containers() if w.startswith("serving.yaml")]
    assert serving["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert serving["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_kubernetes_secrets_come_from_a_secret() -> None:
    example = _example_secret()
    config_maps = {
        document["metadata"]["name"]: document.get("data", {})
        for _, document in _manifests()
        if document["kind"] == "ConfigMap"
    }
    problems = []
    for name, data in config_maps.items():
        for key, value in data.items():
            if SECRET_NAME.search(key) or URL_PASSWORD.search(str(value)):
                problems.append(f"ConfigMap {name}: {key} looks like a secret")
    for where, _, _, container in _containers():
        for source in container.get("envFrom", []):
            if "configMapRef" in source and source["configMapRef"]["name"] not in config_maps:
                problems.append(f"{where}: no ConfigMap {source['configMapRef']['name']}")
            if "secretRef" in source and source["secretRef"]["name"] != example["metadata"]["name"]:
                problems.append(f"{where}: no Secret {source['secretRef']['name']}")
        for variable in container.get("env", []):
            reference = variable.get("valueFrom", {}).get("secretKeyRef")
            if reference:
                known = reference["name"] == example["metadata"]["name"]
                if not known or reference["key"] not in example["stringData"]:
                    problems.append(f"{where}: {variable['name']}: no such Secret key {reference}")
            elif SECRET_NAME.search(variable["name"]):
                problems.append(f"{where}: {variable['name']} is not from a Secret")
            elif URL_PASSWORD.search(str(variable.get("value", ""))):
                problems.append(f"{where}: {variable['name']} has a literal password")
    assert problems == []


def test_the_example_secret_holds_placeholders_only() -> None:
    example = _example_secret()
    text = (K8S / "secret.example.yaml").read_text()
    assert text.startswith("# EXAMPLE ONLY")
    assert "data" not in example  # base64 would hide what is in it
    values = example["stringData"]
    secret = {k: v for k, v in values.items() if not k.endswith("-user")}
    assert secret and all("CHANGE-ME" in value for value in secret.values()), secret


def _example_secret() -> dict[str, Any]:
    (secret,) = [d for w, d in _manifests() if w.startswith("secret.example.yaml")]
    return secret


# --- .env.example


def test_the_settings_example_names_real_settings_and_every_server_one() -> None:
    from pydantic import BaseModel

    from mlops.config.settings import AuthSettings, Settings

    names = _env_file_names(REPO / ".env.example")
    unknown = []
    for name in names:
        assert name.startswith("MLOPS_"), name
        model: type[BaseModel] = Settings
        for part in name.removeprefix("MLOPS_").lower().split("__"):
            field = model.model_fields.get(part)
            if field is None:
                unknown.append(name)
                break
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                model = field.annotation
    assert unknown == []
    server = {
        "MLOPS_PROFILE",
        "MLOPS_HOME",
        "MLOPS_POSTGRES_DSN",
        "MLOPS_DATABASE_PREFIX",
        "MLOPS_REDIS_URL",
        "MLOPS_PREFECT_API_URL",
        "MLOPS_MLFLOW_TRACKING_URI",
        "MLOPS_UI__HOST",
        "MLOPS_UI__PREFECT_PORT",
        "MLOPS_UI__MLFLOW_PORT",
        "MLOPS_SERVING__HOST",
        "MLOPS_SERVING__PORT",
    }
    auth = {f"MLOPS_AUTH__{name.upper()}" for name in AuthSettings.model_fields}
    assert (server | auth) - names == set()


def _env_file_names(path: Path) -> set[str]:
    """Variable names of an env file, commented-out examples (`# NAME=value`) included."""
    pattern = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)
    return set(pattern.findall(path.read_text()))
