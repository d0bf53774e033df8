"""Offline checks of the deployment manifests in manifests/.

Kubernetes objects are validated with the schemas that kubernetes-validate
bundles, the JSON manifests with the schemas in tests/schemas/ (see the README
there for their sources), and the Containerfile with the Dockerfile parser of
the `dockerfile` package. On top of the schemas, the tests check what a schema
cannot: that every environment variable is a real setting, that secrets stay
secret, and that the security and availability settings hold.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dockerfile
import jsonschema
import kubernetes_validate
import pytest
import yaml
from cryptography.fernet import Fernet
from pydantic import SecretStr, ValidationError

from mcp_avaya_workflows.catalog import parse_catalog
from mcp_avaya_workflows.http_transport import GRACEFUL_SHUTDOWN_SECONDS, check_bind
from mcp_avaya_workflows.settings import Settings
from mcp_avaya_workflows.tools import START_TOOL, STATUS_TOOL

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
KUBERNETES = MANIFESTS / "kubernetes"
SCHEMAS = Path(__file__).resolve().parent / "schemas"

# Kubernetes releases to validate against, with the schemas bundled in kubernetes-validate 1.37.0:
# 1.30 for older clusters and 1.37, the newest release the package bundles.
KUBERNETES_VERSIONS = ("1.30", "1.37")
# Infinity's published tenant limit, as the README's rate-limit section gives it.
TENANT_REQUESTS_PER_MINUTE = 100
TENANT_BURST = 20
HTTP_PORT = 8000
# Paths and addresses inside the container, checked here, never bound or written by the tests.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104
CONTAINER_TMP = "/tmp"  # noqa: S108
SERVE_HTTP_ARGS = ["serve", "--transport", "http", "--host", ALL_INTERFACES, "--port", str(HTTP_PORT)]

JSON_MANIFESTS = {
    "server.json": "server.schema.json",
    "mcpb/manifest.json": "mcpb-manifest-v0.4.schema.json",
    "vscode-mcp.json": "vscode-mcp.schema.json",
    "cursor-mcp.json": "cursor-mcp.schema.json",
    "claude_desktop_config.json": "claude-desktop-config.schema.json",
}


# --- helpers -------------------------------------------------------------------------------------


def setting_names() -> set[str]:
    """List every environment variable name that `Settings` reads."""
    names: set[str] = set()
    for info in Settings.model_fields.values():
        names.update(str(choice) for choice in getattr(info.validation_alias, "choices", []))
    return names


def secret_setting_names() -> set[str]:
    """List the environment variable names of the settings typed `SecretStr`."""
    names: set[str] = set()
    for info in Settings.model_fields.values():
        if SecretStr in typing.get_args(info.annotation) or info.annotation is SecretStr:
            names.update(str(choice) for choice in getattr(info.validation_alias, "choices", []))
    return names


def project_version() -> str:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return str(pyproject["project"]["version"])


def load_json(relative: str) -> Any:
    return json.loads((MANIFESTS / relative).read_text())


def kubernetes_objects() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                yield path.name, document


def kubernetes_object(kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [obj for _, obj in kubernetes_objects() if obj["kind"] == kind]
    if name is not None:
        matches = [obj for obj in matches if obj["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} named {name!r} in manifests/kubernetes, found {len(matches)}"
    return matches[0]


def deployment() -> dict[str, Any]:
    return kubernetes_object("Deployment")


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = deployment()["spec"]["template"]["spec"]
    return spec


def server_container() -> dict[str, Any]:
    containers = pod_spec()["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def settings_configmap() -> dict[str, Any]:
    return kubernetes_object("ConfigMap", "mcp-avaya-workflows-settings")


def example_secret() -> dict[str, Any]:
    return kubernetes_object("Secret")


def parse_quantity(text: str | int) -> float:
    """Read a Kubernetes quantity of the forms these manifests use: 100m, 1, 0.5, 128Mi, 1Gi."""
    match = re.fullmatch(r"([0-9.]+)(m|Ki|Mi|Gi)?", str(text))
    assert match is not None, f"unsupported quantity {text!r}"
    factor = {None: 1, "m": 0.001, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}[match.group(2)]
    return float(match.group(1)) * factor


def valid_keys() -> dict[str, str]:
    """Generate valid values for the key settings, to replace the example Secret's placeholders."""
    return {
        "AVAYA_WORKFLOWS_HANDLE_KEYS": Fernet.generate_key().decode(),
        "AVAYA_WORKFLOWS_REQUEST_STATE_KEYS": "k" * 43,
    }


def load_settings_from(values: dict[str, Any]) -> Settings:
    # No .env file: only the values under test count. Keyword values win over the test's own environment.
    return Settings(_env_file=None, **values)


def containerfile() -> list[dockerfile.Command]:
    return list(dockerfile.parse_file(str(MANIFESTS / "Containerfile")))


def final_stage() -> list[dockerfile.Command]:
    commands = containerfile()
    last_from = max(index for index, command in enumerate(commands) if command.cmd == "FROM")
    return commands[last_from:]


def stage_command(cmd: str) -> dockerfile.Command:
    matches = [command for command in final_stage() if command.cmd == cmd]
    assert len(matches) == 1, f"expected one {cmd} in the Containerfile's final stage, found {len(matches)}"
    return matches[0]


def env_names_in(relative: str) -> list[str]:
    """List the environment variable names that a manifest sets."""
    if relative == "Containerfile":
        names = []
        for command in containerfile():
            if command.cmd == "ENV":
                names += list(command.value[0::2])
        return [name for name in names if name.startswith("AVAYA_WORKFLOWS_")]
    if relative.startswith("kubernetes/"):
        path = MANIFESTS / relative
        names = []
        for document in yaml.safe_load_all(path.read_text()):
            if document["kind"] == "Secret":
                names += list(document.get("stringData", {})) + list(document.get("data", {}))
            elif document["kind"] == "ConfigMap" and document["metadata"]["name"] == "mcp-avaya-workflows-settings":
                names += list(document["data"])
            elif document["kind"] == "Deployment":
                for container in document["spec"]["template"]["spec"]["containers"]:
                    names += [variable["name"] for variable in container.get("env", [])]
        return names
    manifest = load_json(relative)
    if relative == "server.json":
        return [variable["name"] for package in manifest["packages"] for variable in package["environmentVariables"]]
    if relative == "mcpb/manifest.json":
        return list(manifest["server"]["mcp_config"]["env"])
    servers = manifest.get("servers") or manifest["mcpServers"]
    return [name for server in servers.values() for name in server.get("env", {})]


def json_validator(schema_file: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / schema_file).read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


def schema_errors(schema_file: str, instance: Any) -> list[str]:
    validator = json_validator(schema_file)
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(instance)]


# --- Kubernetes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    ("file", "obj"),
    [
        pytest.param(file, obj, id=f"{file}:{obj['kind']}/{obj['metadata']['name']}")
        for file, obj in kubernetes_objects()
    ],
)
def test_kubernetes_object_matches_schema(file: str, obj: dict[str, Any], version: str) -> None:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{file}: {'.'.join(map(str, exc.path))}: {exc.message} (Kubernetes {version})")


def test_kubernetes_validation_rejects_unknown_field() -> None:
    broken = copy.deepcopy(deployment())
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_kustomization_lists_manifests() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    files = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}

    # The example Secret is left out, so applying the kustomization never replaces the real keys.
    assert set(kustomization["resources"]) == files - {"secret.yaml"}
    image_names = [image["name"] for image in kustomization["images"]]
    assert server_container()["image"].rsplit(":", 1)[0] in image_names


def test_deployment_runs_several_replicas() -> None:
    spec = deployment()["spec"]
    autoscaler = kubernetes_object("HorizontalPodAutoscaler")

    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment()["metadata"]["name"],
    }
    assert autoscaler["spec"]["minReplicas"] >= 2
    assert autoscaler["spec"]["minReplicas"] == spec["replicas"]
    assert autoscaler["spec"]["maxReplicas"] >= autoscaler["spec"]["minReplicas"]


def test_disruption_budget_keeps_a_replica() -> None:
    budget = kubernetes_object("PodDisruptionBudget")

    assert budget["apiVersion"] == "policy/v1"
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["maxUnavailable"] < deployment()["spec"]["replicas"]


def test_selectors_match_pod_labels() -> None:
    pod_labels = deployment()["spec"]["template"]["metadata"]["labels"]
    selectors = {
        "Deployment": deployment()["spec"]["selector"]["matchLabels"],
        "Service": kubernetes_object("Service")["spec"]["selector"],
        "PodDisruptionBudget": kubernetes_object("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        "NetworkPolicy": kubernetes_object("NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    }

    for kind, selector in selectors.items():
        assert selector.items() <= pod_labels.items(), f"{kind} selector {selector} does not match {pod_labels}"


def test_service_targets_http_port() -> None:
    service = kubernetes_object("Service")["spec"]
    ports = {port["name"]: port["containerPort"] for port in server_container()["ports"]}

    assert service.get("sessionAffinity", "None") == "None"
    assert [ports[port["targetPort"]] for port in service["ports"]] == [HTTP_PORT]


def test_probes_use_health_endpoints() -> None:
    container = server_container()
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    readiness = container["readinessProbe"]["httpGet"]
    liveness = container["livenessProbe"]["httpGet"]

    assert readiness["path"] == "/readyz"
    assert liveness["path"] == "/healthz"
    assert ports[readiness["port"]] == HTTP_PORT
    assert ports[liveness["port"]] == HTTP_PORT


def test_container_runs_http_transport() -> None:
    container = server_container()

    assert container["args"] == SERVE_HTTP_ARGS
    assert [port["containerPort"] for port in container["ports"]] == [HTTP_PORT]


def test_resources_have_requests_and_limits() -> None:
    resources = server_container()["resources"]

    for resource in ("cpu", "memory"):
        request = parse_quantity(resources["requests"][resource])
        limit = parse_quantity(resources["limits"][resource])
        assert 0 < request <= limit, f"{resource}: request {request} and limit {limit}"


def test_pod_security_context_is_restricted() -> None:
    pod = pod_spec()["securityContext"]

    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] > 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_spec()["automountServiceAccountToken"] is False


def test_container_security_context_is_restricted() -> None:
    context = server_container()["securityContext"]

    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "privileged" not in context


def test_tmp_is_an_empty_dir() -> None:
    volumes = {volume["name"]: volume for volume in pod_spec()["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in server_container()["volumeMounts"]}

    assert "emptyDir" in volumes[mounts[CONTAINER_TMP]]


def test_catalog_is_mounted_from_configmap() -> None:
    catalog_path = Path(settings_configmap()["data"]["AVAYA_WORKFLOWS_CATALOG"])
    mounts = {mount["mountPath"]: mount for mount in server_container()["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod_spec()["volumes"]}

    mount = mounts[str(catalog_path.parent)]
    source = volumes[mount["name"]]["configMap"]
    items = {item["path"]: item["key"] for item in source["items"]}
    catalog_map = kubernetes_object("ConfigMap", source["name"])
    text = catalog_map["data"][items[catalog_path.name]]
    assert mount["readOnly"] is True
    assert len(parse_catalog(text, "the catalog ConfigMap").entries) >= 1


def test_env_comes_from_configmap_and_secret() -> None:
    sources = server_container()["envFrom"]

    assert {"configMapRef": {"name": settings_configmap()["metadata"]["name"]}} in sources
    assert {"secretRef": {"name": example_secret()["metadata"]["name"]}} in sources


def test_secret_settings_only_in_secret() -> None:
    in_configmap = set(settings_configmap()["data"]) & secret_setting_names()
    in_secret = set(example_secret()["stringData"])

    assert in_configmap == set()
    assert {
        "AVAYA_WORKFLOWS_CLIENT_SECRET",
        "AVAYA_WORKFLOWS_HANDLE_KEYS",
        "AVAYA_WORKFLOWS_REQUEST_STATE_KEYS",
    } <= in_secret


def test_example_secret_values_are_placeholders() -> None:
    for name, value in example_secret()["stringData"].items():
        assert value.startswith("REPLACE"), f"{name} in secret.yaml holds a value, not a placeholder"


@pytest.mark.parametrize("name", ["AVAYA_WORKFLOWS_HANDLE_KEYS", "AVAYA_WORKFLOWS_REQUEST_STATE_KEYS"])
def test_example_secret_keys_fail_validation(name: str) -> None:
    values = {**settings_configmap()["data"], **valid_keys(), name: example_secret()["stringData"][name]}

    with pytest.raises(ValidationError) as exc_info:
        load_settings_from(values)

    assert [error["loc"] for error in exc_info.value.errors()] == [(name,)]


def test_configured_settings_pass_http_checks() -> None:
    values = {**settings_configmap()["data"], **example_secret()["stringData"], **valid_keys()}
    # The Deployment's arguments, passed the way the command line passes them.
    settings = load_settings_from({**values, "transport": "http", "host": ALL_INTERFACES, "port": HTTP_PORT})

    check_bind(settings)
    assert settings.auth_issuer is not None
    assert settings.public_url is not None
    assert settings.public_url.endswith("/mcp")


def test_rate_limit_share_fits_tenant_quota() -> None:
    settings = load_settings_from({**settings_configmap()["data"], **valid_keys()})
    max_replicas = kubernetes_object("HorizontalPodAutoscaler")["spec"]["maxReplicas"]

    assert 0 < settings.rate_limit_per_minute * max_replicas <= TENANT_REQUESTS_PER_MINUTE
    assert settings.rate_limit_burst * max_replicas <= TENANT_BURST


def test_shutdown_fits_grace_period() -> None:
    command = server_container()["lifecycle"]["preStop"]["exec"]["command"]
    grace = pod_spec()["terminationGracePeriodSeconds"]

    assert command[0] == "sleep"
    assert int(command[1]) + GRACEFUL_SHUTDOWN_SECONDS < grace


def test_network_policy_allows_only_needed_ports() -> None:
    policy = kubernetes_object("NetworkPolicy")["spec"]
    ingress_ports = {(port["protocol"], port["port"]) for rule in policy["ingress"] for port in rule["ports"]}
    egress_ports = {(port["protocol"], port["port"]) for rule in policy["egress"] for port in rule["ports"]}

    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert ingress_ports == {("TCP", HTTP_PORT)}
    assert egress_ports == {("UDP", 53), ("TCP", 53), ("TCP", 443)}


# --- environment variable names ------------------------------------------------------------------


@pytest.mark.parametrize(
    "relative",
    [
        "kubernetes/configmap.yaml",
        "kubernetes/secret.yaml",
        "kubernetes/deployment.yaml",
        "server.json",
        "mcpb/manifest.json",
        "vscode-mcp.json",
        "cursor-mcp.json",
        "claude_desktop_config.json",
        "Containerfile",
    ],
)
def test_env_names_are_settings(relative: str) -> None:
    unknown = sorted(set(env_names_in(relative)) - setting_names())

    assert unknown == [], f"manifests/{relative} sets variables the server does not read: {unknown}"


# --- JSON manifests ------------------------------------------------------------------------------


@pytest.mark.parametrize(("relative", "schema_file"), JSON_MANIFESTS.items())
def test_json_manifest_matches_schema(relative: str, schema_file: str) -> None:
    assert schema_errors(schema_file, load_json(relative)) == []


def _break_server_json(manifest: dict[str, Any]) -> None:
    manifest["repository"]["url"] = "not a URL"


def _break_mcpb(manifest: dict[str, Any]) -> None:
    manifest["user_config"]["client_secret"]["sensitive"] = "yes"


def _break_vscode(manifest: dict[str, Any]) -> None:
    manifest["servers"]["avaya-workflows"]["url"] = "https://mcp.example.com/mcp"


def _break_cursor(manifest: dict[str, Any]) -> None:
    manifest["mcpServers"]["avaya-workflows"]["comand"] = manifest["mcpServers"]["avaya-workflows"].pop("command")


def _break_claude(manifest: dict[str, Any]) -> None:
    manifest["mcpServers"]["avaya-workflows"]["url"] = "https://mcp.example.com/mcp"


@pytest.mark.parametrize(
    ("relative", "mutate"),
    [
        ("server.json", _break_server_json),
        ("mcpb/manifest.json", _break_mcpb),
        ("vscode-mcp.json", _break_vscode),
        ("cursor-mcp.json", _break_cursor),
        ("claude_desktop_config.json", _break_claude),
    ],
)
def test_json_schema_rejects_broken_manifest(relative: str, mutate: Any) -> None:
    manifest = load_json(relative)
    mutate(manifest)

    assert schema_errors(JSON_MANIFESTS[relative], manifest) != []


def test_server_json_describes_package() -> None:
    manifest = load_json("server.json")
    schema = json.loads((SCHEMAS / "server.schema.json").read_text())
    (package,) = manifest["packages"]

    assert manifest["$schema"] == schema["$id"]
    assert manifest["version"] == project_version()
    assert package["registryType"] == "pypi"
    assert package["identifier"] == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    assert package["version"] == project_version()
    assert package["transport"] == {"type": "stdio"}
    assert [argument["value"] for argument in package["packageArguments"]] == ["serve"]


def test_server_json_marks_secrets() -> None:
    (package,) = load_json("server.json")["packages"]
    variables = {variable["name"]: variable for variable in package["environmentVariables"]}

    assert variables["AVAYA_WORKFLOWS_CLIENT_SECRET"]["isSecret"] is True
    assert variables["AVAYA_WORKFLOWS_HANDLE_KEYS"]["isSecret"] is True
    for name, variable in variables.items():
        assert variable.get("isSecret", False) is (name in secret_setting_names()), name


def test_server_json_remote_is_streamable_http() -> None:
    remotes = load_json("server.json")["remotes"]

    assert [remote["type"] for remote in remotes] == ["streamable-http"]
    assert remotes[0]["url"].startswith("https://")
    assert remotes[0]["url"].endswith("/mcp")


def test_mcpb_manifest_marks_secrets() -> None:
    manifest = load_json("mcpb/manifest.json")
    user_config = manifest["user_config"]
    env = manifest["server"]["mcp_config"]["env"]

    assert user_config["client_secret"]["sensitive"] is True
    assert user_config["handle_keys"]["sensitive"] is True
    for name, value in env.items():
        key = re.fullmatch(r"\$\{user_config\.(\w+)\}", value)
        assert key is not None, f"{name} is not taken from user_config"
        assert user_config[key.group(1)].get("sensitive", False) is (name in secret_setting_names()), name


def test_mcpb_manifest_uses_every_user_config_entry() -> None:
    manifest = load_json("mcpb/manifest.json")
    text = json.dumps(manifest["server"]["mcp_config"])
    used = set(re.findall(r"\$\{user_config\.(\w+)\}", text))

    assert used == set(manifest["user_config"])
    for name, entry in manifest["user_config"].items():
        assert entry.get("required") or "default" in entry, f"optional user_config.{name} has no default"


def test_mcpb_manifest_matches_package() -> None:
    manifest = load_json("mcpb/manifest.json")

    assert manifest["manifest_version"] == "0.4"
    assert manifest["version"] == project_version()
    assert {tool["name"] for tool in manifest["tools"]} == {START_TOOL, STATUS_TOOL}
    assert (ROOT / manifest["server"]["entry_point"]).is_file()
    assert manifest["server"]["mcp_config"]["args"][-2:] == ["mcp-avaya-workflows", "serve"]


def test_vscode_config_prompts_for_secrets() -> None:
    manifest = load_json("vscode-mcp.json")
    inputs = {entry["id"]: entry for entry in manifest["inputs"]}
    env = manifest["servers"]["avaya-workflows"]["env"]

    for name in set(env) & secret_setting_names():
        reference = re.fullmatch(r"\$\{input:([\w-]+)\}", env[name])
        assert reference is not None, f"{name} is stored in the file instead of prompted for"
        assert inputs[reference.group(1)]["password"] is True
    assert set(env) & secret_setting_names() == {"CLIENT_SECRET", "AVAYA_WORKFLOWS_HANDLE_KEYS"}


def test_cursor_config_reads_secrets_from_environment() -> None:
    env = load_json("cursor-mcp.json")["mcpServers"]["avaya-workflows"]["env"]

    assert set(env) & secret_setting_names() == {"AVAYA_WORKFLOWS_CLIENT_SECRET", "AVAYA_WORKFLOWS_HANDLE_KEYS"}
    for name in set(env) & secret_setting_names():
        assert env[name] == f"${{env:{name}}}"


@pytest.mark.parametrize(
    ("relative", "key", "remote_key"),
    [
        ("vscode-mcp.json", "servers", "avaya-workflows-remote"),
        ("cursor-mcp.json", "mcpServers", "avaya-workflows-remote"),
    ],
)
def test_client_config_has_remote_entry(relative: str, key: str, remote_key: str) -> None:
    servers = load_json(relative)[key]

    assert servers[remote_key]["url"] == load_json("server.json")["remotes"][0]["url"]
    assert servers["avaya-workflows"]["args"] == ["serve"]


# --- Containerfile -------------------------------------------------------------------------------


def test_containerfile_pins_slim_python_311() -> None:
    commands = containerfile()
    (argument,) = [command for command in commands if command.cmd == "ARG"]
    name, _, default = argument.value[0].partition("=")
    stages = [command.value[0] for command in commands if command.cmd == "FROM"]

    assert re.fullmatch(r"docker\.io/library/python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", default)
    assert stages == [f"${{{name}}}"] * len(stages)


def test_containerfile_installs_with_constraints() -> None:
    runs = [command.value[0] for command in containerfile() if command.cmd == "RUN"]

    assert any("pip install --no-cache-dir -c constraints.txt ." in run for run in runs)


def test_containerfile_copies_only_unignored_files() -> None:
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    included = {line.removeprefix("!") for line in ignore if line.startswith("!")}
    sources = [
        source
        for command in containerfile()
        if command.cmd == "COPY" and not any(flag.startswith("--from") for flag in command.flags)
        for source in command.value[:-1]
    ]

    assert ignore[0] == "*"
    assert ".env" not in included
    for source in sources:
        assert source in included, f"{source} is copied but excluded by .dockerignore"
        assert (ROOT / source).exists()


def test_containerfile_runs_as_numeric_user() -> None:
    user = stage_command("USER").value[0]

    assert re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", user)
    assert int(user.split(":")[0]) == pod_spec()["securityContext"]["runAsUser"]
    assert int(user.split(":")[1]) == pod_spec()["securityContext"]["runAsGroup"]


def test_containerfile_writes_only_to_tmp() -> None:
    env_values = stage_command("ENV").value
    env = dict(zip(env_values[0::2], env_values[1::2], strict=True))

    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] == CONTAINER_TMP
    assert env["TMPDIR"] == CONTAINER_TMP


def test_containerfile_serves_http_on_8000() -> None:
    entrypoint = stage_command("ENTRYPOINT")
    cmd = stage_command("CMD")

    assert stage_command("EXPOSE").value == (str(HTTP_PORT),)
    assert entrypoint.json is True
    assert cmd.json is True
    assert list(entrypoint.value) == ["mcp-avaya-workflows"]
    assert list(cmd.value) == SERVE_HTTP_ARGS


def test_containerfile_healthcheck_uses_healthz() -> None:
    healthcheck = stage_command("HEALTHCHECK")

    assert healthcheck.value[0] == "CMD"
    assert f"http://127.0.0.1:{HTTP_PORT}/healthz" in " ".join(healthcheck.value)


# --- README --------------------------------------------------------------------------------------


def test_readme_names_existing_manifests() -> None:
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"manifests/[\w./-]*\w", readme))

    assert "manifests/Containerfile" in named
    for path in named:
        assert (ROOT / path).exists(), f"README.md names {path}, which does not exist"
