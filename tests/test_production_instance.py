"""The production instance (deploy/dagster.yaml) against the real PostgreSQL server.

A scratch database of its own; DAGSTER_HOME = a temp dir holding a copy of the production
dagster.yaml; the URL only in DAGSTER_POSTGRES_URL. Loads the instance, applies deploy/pools.yaml
(in-process and with the CLI, twice: idempotent), materializes ``fmp_raw/universe`` (embedded
warehouse + offline FMP) on it and reads the run and its materialization back from PostgreSQL
with plain SQL.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import yaml

from resources.event_storage import BatchedPostgresEventLogStorage
from resources.pool_limits import DEFAULT_POOLS_FILE, apply_pool_limits, current_pool_limits, load_pool_limits
from tests.pg_helpers import postgres_url, scratch_database

ROOT = Path(__file__).resolve().parent.parent
PROD_YAML = ROOT / "deploy" / "dagster.yaml"
SCRATCH_DB = f"platform_prod_instance_{os.getpid()}"  # unique: parallel sessions never collide


@pytest.fixture(scope="module")
def prod_url():
    with scratch_database(SCRATCH_DB) as conninfo:
        yield postgres_url(conninfo)


@pytest.fixture(scope="module")
def prod_home(tmp_path_factory, prod_url):
    home = tmp_path_factory.mktemp("prod_dagster_home")
    shutil.copy(PROD_YAML, home / "dagster.yaml")
    saved = {k: os.environ.get(k) for k in ("DAGSTER_POSTGRES_URL",)}
    os.environ["DAGSTER_POSTGRES_URL"] = prod_url
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def instance(prod_home):
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(prod_home)) as inst:
        yield inst


def test_production_yaml_holds_no_secret():
    config = yaml.safe_load(PROD_YAML.read_text())
    text = yaml.safe_dump(config)  # the configuration itself, without its comments
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        assert config[storage]["config"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
    assert not re.search(r"postgres(ql)?(\+\w+)?://", text), "a literal connection URL in dagster.yaml"
    assert not re.search(r"(?im)^\s*(password|secret|token|api_key)\s*:", text)


def test_instance_loads_with_production_settings(instance):
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert type(instance.event_log_storage) is BatchedPostgresEventLogStorage
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
    assert instance.run_monitoring_enabled
    settings = instance.get_concurrency_config()
    assert settings.run_queue_config.max_concurrent_runs == 8
    assert settings.pool_config.default_pool_limit == 4
    assert settings.pool_config.pool_granularity.value == "op"
    assert instance.event_log_storage.supports_global_concurrency_limits


def test_pool_limits_applied_idempotently(instance, prod_home, prod_url):
    wanted = load_pool_limits(DEFAULT_POOLS_FILE)
    assert wanted["fmp_api"] == 1 and set(wanted) >= {"fmp_api", "snowflake", "postgres"}

    first = apply_pool_limits(instance, wanted)
    assert all(c.changed and c.before is None for c in first)
    assert not any(c.changed for c in apply_pool_limits(instance, wanted))
    assert {k: v for k, v in current_pool_limits(instance).items() if k in wanted} == wanted

    # the command an operator runs, against the same instance (DAGSTER_HOME + DAGSTER_POSTGRES_URL)
    env = {**os.environ, "DAGSTER_HOME": str(prod_home), "PYTHONPATH": str(ROOT)}
    cli = subprocess.run([sys.executable, "-m", "resources.pool_limits"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert "fmp_api: 1 (unchanged)" in cli.stdout, cli.stdout
    check = subprocess.run([sys.executable, "-m", "resources.pool_limits", "--check"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and "pool limits match" in check.stdout, check.stdout + check.stderr[-2000:]

    # and in PostgreSQL itself
    with psycopg.connect(prod_url) as conn:
        rows = dict(conn.execute('SELECT concurrency_key, "limit" FROM concurrency_limits').fetchall())
        slots = dict(conn.execute("SELECT concurrency_key, count(*) FROM concurrency_slots "
                                  "WHERE deleted = false GROUP BY concurrency_key").fetchall())
    assert {k: rows.get(k) for k in wanted} == wanted
    assert {k: slots.get(k) for k in wanted} == wanted


def test_materialization_recorded_in_postgres(instance, prod_url):
    from dagster import materialize

    from financial_assets.raw.universe import UNIVERSE_KEY, fmp_universe
    from resources.fmp import FMPResource
    from resources.warehouse import warehouse_from_env

    result = materialize([fmp_universe], instance=instance,
                         resources={"warehouse": warehouse_from_env(), "fmp": FMPResource.from_env()})
    assert result.success
    run_id = result.run_id

    with psycopg.connect(prod_url) as conn:
        status = conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,)).fetchone()
        events = conn.execute(
            "SELECT asset_key FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            (run_id,)).fetchall()
        partitions = conn.execute("SELECT count(*) FROM dynamic_partitions WHERE partitions_def_name = %s",
                                  ("sp500_symbols",)).fetchone()[0]
    assert status == ("SUCCESS",)
    assert [row[0] for row in events] == [UNIVERSE_KEY.to_string()]
    # the universe asset keeps the symbol partitions in step; they are instance state in PostgreSQL too
    assert partitions >= 400
    record = instance.get_latest_materialization_event(UNIVERSE_KEY)
    assert record is not None and record.run_id == run_id


# ------------------------------------------------------------------ Helm values (scale-out)
#
# No helm binary here (and none is downloaded), so deploy/helm/values.yaml is checked against the
# keys the Dagster chart documents: the pydantic models its values.schema.json is generated from
# (helm/dagster/schema/schema/charts/** in dagster-io/dagster: values.py, subschema/daemon.py,
# run_launcher.py, concurrency.py, postgresql.py, global_.py, retention.py and
# dagster_user_deployments/subschema/user_deployments.py). CLOSED sections forbid unknown keys, as
# the chart's schema does (extra="forbid"); OPEN ones are Kubernetes objects passed through.

HELM_VALUES = ROOT / "deploy" / "helm" / "values.yaml"
OPEN = object()  # any mapping (raw Kubernetes object)
SECRET_ENV = {"SNOWFLAKE_PASSWORD", "SNOWFLAKE_PRIVATE_KEY", "FMP_API_KEY", "POSTGRES_URL", "DAGSTER_POSTGRES_URL",
              "SNOWFLAKE_USER", "SNOWFLAKE_ACCOUNT"}

_IMAGE = {"repository": str, "tag": str, "pullPolicy": ("Always", "IfNotPresent", "Never")}
_SECRET_REF = [{"name": str}]
_TICK_RETENTION = {"purgeAfterDays": (int, {"skipped": int, "success": int, "failure": int, "started": int})}
CHART_KEYS = {
    "global": {"postgresqlSecretName": str, "dagsterHome": str, "serviceAccountName": str,
               "celeryConfigSecretName": str},
    "generatePostgresqlPasswordSecret": bool,
    "generateCeleryConfigSecret": bool,
    "postgresql": {"image": OPEN, "enabled": bool, "postgresqlHost": str, "postgresqlUsername": str,
                   "postgresqlPassword": str, "postgresqlDatabase": str, "postgresqlParams": OPEN,
                   "postgresqlScheme": str, "service": {"port": int}},
    "dagsterWebserver": OPEN,
    "dagsterDaemon": {
        "enabled": bool, "image": _IMAGE, "heartbeatTolerance": int,
        "runCoordinator": {"enabled": bool, "type": ("QueuedRunCoordinator", "CustomRunCoordinator"),
                           "config": {"queuedRunCoordinator": {
                               "maxConcurrentRuns": int, "tagConcurrencyLimits": [OPEN],
                               "dequeueIntervalSeconds": int, "dequeueNumWorkers": int,
                               "dequeueUseThreads": bool}, "customRunCoordinator": OPEN}},
        "env": (OPEN, [OPEN]), "envConfigMaps": _SECRET_REF, "envSecrets": _SECRET_REF,
        "deploymentLabels": OPEN, "labels": OPEN, "nodeSelector": OPEN, "affinity": OPEN, "tolerations": [OPEN],
        "podSecurityContext": OPEN, "securityContext": OPEN, "resources": OPEN, "livenessProbe": OPEN,
        "readinessProbe": OPEN, "startupProbe": OPEN, "annotations": OPEN,
        # dagster.yaml's run_monitoring / run_retries in camelCase (the chart types them as open maps;
        # these are the keys its instance template renders)
        "runMonitoring": {"enabled": bool, "startTimeoutSeconds": int, "cancelTimeoutSeconds": int,
                          "maxRuntimeSeconds": int, "maxResumeRunAttempts": int, "pollIntervalSeconds": int,
                          "freeSlotsAfterRunEndSeconds": int},
        "runRetries": {"enabled": bool, "maxRetries": int, "retryOnAssetOrOpFailure": bool},
        "sensors": {"useThreads": bool, "numWorkers": int, "numSubmitWorkers": int},
        "schedules": {"useThreads": bool, "numWorkers": int, "numSubmitWorkers": int},
        "schedulerName": str, "volumeMounts": [OPEN], "volumes": [OPEN],
    },
    "concurrency": {"enabled": bool,
                    "pools": {"defaultLimit": int, "granularity": ("run", "op"), "opGranularityRunBuffer": int},
                    "runs": {"maxConcurrentRuns": int,
                             "tagConcurrencyLimits": [{"key": str, "value": (str, OPEN), "limit": int}]}},
    "dagster-user-deployments": {
        "enabled": bool, "enableSubchart": bool, "imagePullSecrets": _SECRET_REF,
        "deployments": [{
            "name": str, "image": _IMAGE, "dagsterApiGrpcArgs": [str], "codeServerArgs": [str],
            "includeConfigInLaunchedRuns": {"enabled": bool}, "port": int, "env": (OPEN, [OPEN]),
            "envConfigMaps": _SECRET_REF, "envSecrets": _SECRET_REF, "annotations": OPEN, "nodeSelector": OPEN,
            "affinity": OPEN, "tolerations": [OPEN], "podSecurityContext": OPEN, "securityContext": OPEN,
            "resources": OPEN, "livenessProbe": OPEN, "readinessProbe": OPEN, "startupProbe": OPEN,
            "labels": OPEN, "volumeMounts": [OPEN], "volumes": [OPEN], "schedulerName": str}],
    },
    "runLauncher": {
        "type": ("K8sRunLauncher", "CeleryK8sRunLauncher", "CustomRunLauncher"),
        "config": {"k8sRunLauncher": {
            "image": _IMAGE, "imagePullPolicy": ("Always", "IfNotPresent", "Never"), "jobNamespace": str,
            "loadInclusterConfig": bool, "kubeconfigFile": str, "envConfigMaps": _SECRET_REF,
            "envSecrets": _SECRET_REF, "envVars": [str], "volumeMounts": [OPEN], "volumes": [OPEN],
            "labels": OPEN, "failPodOnRunFailure": bool, "resources": OPEN, "schedulerName": str,
            "securityContext": OPEN,
            "runK8sConfig": {"containerConfig": OPEN, "podSpecConfig": OPEN, "podTemplateSpecMetadata": OPEN,
                             "jobSpecConfig": OPEN, "jobMetadata": OPEN}},
            "celeryK8sRunLauncher": OPEN, "customRunLauncher": OPEN},
    },
    "telemetry": {"enabled": bool},
    "retention": {"enabled": bool, "sensor": _TICK_RETENTION, "schedule": _TICK_RETENTION,
                  "autoMaterialize": _TICK_RETENTION},
    "computeLogManager": OPEN, "pythonLogs": OPEN, "ingress": OPEN, "serviceAccount": OPEN, "imagePullSecrets": _SECRET_REF,
    "additionalInstanceConfig": OPEN, "busybox": OPEN, "migrate": OPEN, "scheduler": OPEN, "rabbitmq": OPEN,
    "redis": OPEN, "flower": OPEN,
}


def _schema_errors(value, spec, path="") -> list[str]:
    if spec is OPEN:
        return [] if isinstance(value, dict) else [f"{path}: expected a mapping"]
    if isinstance(spec, tuple):  # enum of literals, or alternatives of specs
        if all(isinstance(s, str) for s in spec):
            return [] if value in spec else [f"{path}: {value!r} not one of {spec}"]
        for alternative in spec:
            if not _schema_errors(value, alternative, path):
                return []
        return [f"{path}: {value!r} matches none of the allowed forms"]
    if isinstance(spec, list):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [e for i, item in enumerate(value) for e in _schema_errors(item, spec[0], f"{path}[{i}]")]
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return [f"{path}: expected a mapping"]
        errors = [f"{path}.{k}: not a key of the chart" for k in value if k not in spec]
        return errors + [e for k, v in value.items() if k in spec for e in _schema_errors(v, spec[k], f"{path}.{k}")]
    if spec is int:
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{path}: expected an int"]
    return [] if isinstance(value, spec) else [f"{path}: expected {spec.__name__}, got {value!r}"]


def _helm_values() -> dict:
    return yaml.safe_load(HELM_VALUES.read_text())


def _walk_strings(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk_strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk_strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


def test_schema_checker_rejects_what_the_chart_rejects():
    assert _schema_errors({"runLauncher": {"type": "K8sRunLauncher", "config": {"k8sRunLauncher": {"envSecret": []}}}},
                          CHART_KEYS)
    assert _schema_errors({"concurrency": {"pools": {"default_limit": 4}}}, CHART_KEYS)
    assert _schema_errors({"dagster-user-deployments": {"deployments": [{"port": "3030"}]}}, CHART_KEYS)
    assert not _schema_errors({"concurrency": {"enabled": True, "pools": {"defaultLimit": 4}}}, CHART_KEYS)


def test_helm_values_match_chart_keys_and_our_deployment():
    values = _helm_values()
    errors = _schema_errors(values, CHART_KEYS)
    assert not errors, "\n".join(errors)

    # one user code deployment per code location of workspace.yaml, same module and location name
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    wanted = {e["python_module"]["location_name"]: e["python_module"]["module_name"] for e in workspace["load_from"]}
    user = values["dagster-user-deployments"]
    assert user["enabled"] and user["enableSubchart"]
    served = {}
    for deployment in user["deployments"]:
        args = deployment["dagsterApiGrpcArgs"]
        served[args[args.index("--location-name") + 1]] = args[args.index("--module-name") + 1]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", deployment["name"]), "not a DNS-1123 name"
        assert deployment["includeConfigInLaunchedRuns"]["enabled"]
        assert deployment["image"]["tag"] not in ("", "latest")
        for env in deployment.get("env", []):
            assert env["name"] not in SECRET_ENV or "valueFrom" in env, f"{env['name']} must come from a secret"
        assert {s["name"] for s in deployment["envSecrets"]} >= {"platform-snowflake", "platform-postgres"}
    assert served == wanted

    # every process that writes run events batches them: webserver and daemon create runs, run pods report
    for env in (values["dagsterWebserver"]["env"], values["dagsterDaemon"]["env"],
                *(d["env"] for d in user["deployments"])):
        assert {"name": "DAGSTER_EVENT_BATCH_SIZE", "value": "1000"} in env
    assert "platform-fmp" in {s["name"] for s in user["deployments"][0]["envSecrets"]}
    for module in wanted.values():  # the modules exist in the project the image is built from
        assert (ROOT / (module.replace(".", "/") + ".py")).exists() or (ROOT / module.split(".")[0]).is_dir()

    # K8s run launcher; Dagster storage from an external PostgreSQL whose password is a secret
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert "k8sRunLauncher" in values["runLauncher"]["config"]
    assert values["postgresql"]["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"] and values["postgresql"]["postgresqlPassword"] == ""

    # the same run/pool limits, retries and monitoring as deploy/dagster.yaml
    prod = yaml.safe_load(PROD_YAML.read_text())
    conc = values["concurrency"]
    assert conc["enabled"]
    assert conc["runs"]["maxConcurrentRuns"] == prod["concurrency"]["runs"]["max_concurrent_runs"]
    assert conc["runs"]["tagConcurrencyLimits"] == prod["concurrency"]["runs"]["tag_concurrency_limits"]
    assert conc["pools"]["defaultLimit"] == prod["concurrency"]["pools"]["default_limit"]
    assert conc["pools"]["granularity"] == prod["concurrency"]["pools"]["granularity"]
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert "maxConcurrentRuns" not in queued and "tagConcurrencyLimits" not in queued, \
        "run limits belong in concurrency.runs (Dagster rejects both)"
    retries = values["dagsterDaemon"]["runRetries"]
    assert retries == {"enabled": True, "maxRetries": prod["run_retries"]["max_retries"],
                       "retryOnAssetOrOpFailure": prod["run_retries"]["retry_on_asset_or_op_failure"]}
    assert values["dagsterDaemon"]["runMonitoring"]["enabled"]

    # nothing that looks like a credential anywhere in the values
    for path, text in _walk_strings(values):
        assert not re.search(r"://[^/\s:@]+:[^@\s]+@", text), f"{path}: credentials in a URL"
        assert not re.search(r"(?i)(password|secret|token|api_?key)\s*[=:]", text), f"{path}: {text!r}"


def test_helm_instance_settings_are_valid_dagster_config():
    """The instance sections these values map to (camelCase -> snake_case, as the chart's instance template
    does; an approximation, not a helm render), checked by Dagster's own config schema and validator."""
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config_schema, validate_concurrency_config

    def snake(mapping):
        return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): v for k, v in mapping.items()}

    values = _helm_values()
    daemon, conc = values["dagsterDaemon"], values["concurrency"]
    rendered = {
        "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator",
                            "config": snake(daemon["runCoordinator"]["config"]["queuedRunCoordinator"])},
        "run_monitoring": snake(daemon["runMonitoring"]),
        "run_retries": snake(daemon["runRetries"]),
        "concurrency": {"runs": snake(conc["runs"]), "pools": snake(conc["pools"])},
    }
    result = validate_config(dagster_instance_config_schema(), rendered)
    assert result.success, [e.message for e in result.errors]
    validate_concurrency_config(rendered)  # raises on run limits set in two places


def test_helm_run_launcher_config_is_valid_for_dagster_k8s():
    """Only where dagster-k8s is importable (it is not a project dependency yet)."""
    pytest.importorskip("dagster_k8s")
    from dagster._config import validate_config
    from dagster_k8s import K8sRunLauncher, k8s_job_executor

    k8s = _helm_values()["runLauncher"]["config"]["k8sRunLauncher"]
    launcher_config = {
        "instance_config_map": "platform-dagster-instance", "service_account_name": "dagster",
        "postgres_password_secret": _helm_values()["global"]["postgresqlSecretName"],
        "image_pull_policy": k8s["imagePullPolicy"], "load_incluster_config": k8s["loadInclusterConfig"],
        "env_config_maps": k8s["envConfigMaps"], "env_secrets": k8s["envSecrets"], "env_vars": k8s["envVars"],
        "volume_mounts": k8s["volumeMounts"], "volumes": k8s["volumes"], "labels": k8s["labels"],
        "fail_pod_on_run_failure": k8s["failPodOnRunFailure"],
        "run_k8s_config": {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): v for k, v in k8s["runK8sConfig"].items()},
    }
    result = validate_config(K8sRunLauncher.config_type(), launcher_config)
    assert result.success, [e.message for e in result.errors]
    # the k8s_job_executor config documented in deploy/README.md
    executor = {"max_concurrent": 4, "env_secrets": ["platform-snowflake", "platform-fmp", "platform-postgres"],
                "step_k8s_config": {"container_config": {"resources": {"requests": {"cpu": "250m"}}}}}
    result = validate_config(k8s_job_executor.config_schema.config_type, executor)
    assert result.success, [e.message for e in result.errors]


# ------------------------------------------------------------------ environment


_ENV_READ = re.compile(r"""(?:os\.environ\.get|os\.getenv|os\.environ\[|EnvVar|env_int|env_float|env_str|env_bool)\(?\s*["']([A-Z][A-Z0-9_]+)["']""")


def test_env_example_lists_every_variable_the_code_reads():
    listed = set(re.findall(r"(?m)^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text()))
    read: dict[str, str] = {}
    for package in ("financial_assets", "conflict_assets", "resources"):
        for path in (ROOT / package).rglob("*.py"):
            for name in _ENV_READ.findall(path.read_text(errors="replace")):
                read.setdefault(name, str(path.relative_to(ROOT)))
    missing = {name: where for name, where in read.items() if name not in listed}
    assert not missing, f"variables read by the code but not in .env.example: {missing}"
    # and the production instance's variable
    assert "DAGSTER_POSTGRES_URL" in listed
    # env set literally in the Helm values is never one of the secret variables
    for deployment in _helm_values()["dagster-user-deployments"]["deployments"]:
        for env in deployment.get("env", []):
            assert env["name"] in listed, f"{env['name']} (helm values) not in .env.example"
