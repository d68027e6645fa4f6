"""serverless.yml (Tencent Serverless Cloud Framework, `scf deploy`): structure, triggers,
environment, no committed secrets, and a handler that resolves inside the built package."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.config import Settings
from shared.schedulers import scheduler_from_settings
from shared.schedulers.tdmq import TdmqScheduler
from tests.deploy._scf import (
    ANY_VARIABLE,
    ENV_REF,
    REAL_INDEX,
    SERVERLESS_YML,
    deploy,
    env_refs,
    load_yml,
    resolve,
    scf_env,
    values,
)

SECRET_NAME = re.compile(r"secret|token|password|passwd|private|credential|(^|_)key$", re.I)
# Shapes of real credentials that must never be committed.
CREDENTIAL_SHAPES = (
    re.compile(r"AKID[0-9A-Za-z]{12,}"),  # Tencent Cloud SecretId
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\"private_key\""),  # a Google service-account key
)


@pytest.fixture(scope="module")
def yml() -> dict[str, Any]:
    return load_yml()


def events(yml: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    found = []
    for event in yml["inputs"]["events"]:
        assert len(event) == 1, event  # one trigger per list entry, keyed by its type
        if kind in event:
            found.append(event[kind])
    return found


def walk(node: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(node, dict):
        return [item for k, v in node.items() for item in walk(v, (*path, str(k)))]
    if isinstance(node, list):
        return [item for i, v in enumerate(node) for item in walk(v, (*path, str(i)))]
    return [(path, node)]


def test_one_python_function_with_the_scf_entry_point(yml: dict[str, Any]) -> None:
    assert yml["component"] == "scf"
    assert yml["name"] == "restorefn"
    inputs = yml["inputs"]
    assert inputs["runtime"] == "Python3.10"
    assert inputs["handler"] == "index.main_handler"
    assert inputs["type"] == "event"
    assert inputs["src"] == "${env:RESTORE_SCF_PACKAGE_DIR}"
    assert inputs["role"] == "${env:RESTORE_SCF_ROLE}"
    assert inputs["region"] == "${env:RESTORE_SCF_REGION}"
    assert inputs["name"] == "${env:RESTORE_SCF_FUNCTION_NAME}"


def test_numbers_and_booleans_are_literals_the_api_accepts(yml: dict[str, Any]) -> None:
    # An ${env:...} value is a string; these fields must reach the API as numbers/booleans.
    inputs = yml["inputs"]
    assert isinstance(inputs["memorySize"], int)
    assert inputs["memorySize"] in (64, *range(128, 3072 + 1, 128))
    assert isinstance(inputs["timeout"], int)
    assert 1 <= inputs["timeout"] <= 900
    assert isinstance(inputs["initTimeout"], int)
    for path, value in walk(inputs["events"]):
        if path[-1] in ("enable", "isIntegratedResponse", "enableCORS", "isBase64Encoded"):
            assert isinstance(value, bool), path
        if path[-1] == "serviceTimeout":
            assert isinstance(value, int)
            assert value <= inputs["timeout"], "the gateway would give up before the function"
    deadline = float(inputs["environment"]["variables"]["RESTORE_DEADLINE_SECONDS"])
    assert deadline < inputs["timeout"], "retries must end before SCF kills the invocation"
    assert all(enabled is True for path, enabled in walk(inputs["events"]) if path[-1] == "enable")


def test_webhook_is_an_https_api_gateway_with_integration_responses(yml: dict[str, Any]) -> None:
    (apigw,) = events(yml, "apigw")
    parameters = apigw["parameters"]
    assert parameters["protocols"] == ["https"]
    assert parameters["serviceId"] == "${env:RESTORE_SCF_APIGW_SERVICE_ID}"
    routes = {(e["method"], e["path"]) for e in parameters["endpoints"]}
    assert routes == {
        ("POST", "${env:RESTORE_SCF_WEBHOOK_PATH}"),  # restore
        ("GET", "${env:RESTORE_SCF_WEBHOOK_PATH}"),  # status, query parameters
        ("POST", "${env:RESTORE_SCF_STATUS_PATH}"),  # status, JSON body
    }
    for endpoint in parameters["endpoints"]:
        # Without it the gateway returns the handler's {"statusCode": ...} dict as a 200 body.
        assert endpoint["function"]["isIntegratedResponse"] is True
        assert endpoint["enableCORS"] is False
    assert len({e["apiName"] for e in parameters["endpoints"]}) == len(parameters["endpoints"])


def test_queue_and_cos_restore_triggers(yml: dict[str, Any]) -> None:
    requests, rechecks = events(yml, "cmq")
    assert requests["parameters"]["name"] == "${env:RESTORE_SCF_REQUEST_TOPIC}"
    # Bulk chunks are published to the topic whose trigger brings them back: one variable.
    variables = yml["inputs"]["environment"]["variables"]
    assert variables["RESTORE_BULK_TDMQ_TOPIC"] == requests["parameters"]["name"]
    assert variables["RESTORE_BULK_QUEUE"] == "tdmq"
    # The queue the scheduler sends re-checks to is the queue the trigger reads: one variable.
    assert rechecks["parameters"]["name"] == "${env:RESTORE_RECHECK_TDMQ_QUEUE}"
    recheck_queue = yml["inputs"]["environment"]["variables"]["RESTORE_RECHECK_TDMQ_QUEUE"]
    assert rechecks["parameters"]["name"] == recheck_queue
    for trigger in (requests, rechecks):
        assert trigger["parameters"]["qualifier"] == "$DEFAULT"
    cos = events(yml, "cos")
    assert sorted(c["parameters"]["events"] for c in cos) == [
        "cos:ObjectRestore:Completed", "cos:ObjectRestore:Post",
    ]
    for trigger in cos:
        assert trigger["parameters"]["bucket"] == "${env:RESTORE_SCF_COS_TRIGGER_BUCKET}"
        assert set(trigger["parameters"]["filter"]) == {"prefix", "suffix"}
    kinds = [next(iter(e)) for e in yml["inputs"]["events"]]
    assert sorted(kinds) == ["apigw", "cmq", "cmq", "cos", "cos"]
    assert len({next(iter(e.values()))["name"] for e in yml["inputs"]["events"]}) == len(kinds)


def test_environment_configures_allowlists_tdmq_events_and_hmac(yml: dict[str, Any]) -> None:
    variables = dict(yml["inputs"]["environment"]["variables"])
    bulk = {name: variables.pop(name) for name in list(variables) if "_BULK_" in name}
    assert bulk["RESTORE_BULK_MAX_INSTANCES"] == "10"
    assert variables == {
        "RESTORE_COS_ALLOWED_BUCKETS": "${env:RESTORE_COS_ALLOWED_BUCKETS}",
        "RESTORE_GCS_ALLOWED_BUCKETS": "${env:RESTORE_GCS_ALLOWED_BUCKETS}",
        "RESTORE_EVENT_SINK": "tdmq",
        "RESTORE_EVENT_TDMQ_TOPIC": "${env:RESTORE_EVENT_TDMQ_TOPIC}",
        "RESTORE_EVENT_TDMQ_REGION": "${env:RESTORE_EVENT_TDMQ_REGION}",
        "RESTORE_WEBHOOK_AUTH": "hmac",
        "RESTORE_WEBHOOK_SECRETS": "${env:RESTORE_WEBHOOK_SECRETS}",
        "RESTORE_DEADLINE_SECONDS": "45",
        "RESTORE_RECHECK_SCHEDULER": "tdmq",
        "RESTORE_RECHECK_TDMQ_QUEUE": "${env:RESTORE_RECHECK_TDMQ_QUEUE}",
        "RESTORE_RECHECK_MAX_DELAY_SECONDS": "3600",
        "RESTORE_RECHECK_MARGIN": "${env:RESTORE_RECHECK_MARGIN}",
        "RESTORE_LEDGER": "${env:RESTORE_LEDGER}",
        "RESTORE_CALLBACK_SECRET": "${env:RESTORE_CALLBACK_SECRET}",
        "RESTORE_CALLBACK_ALLOWED_HOSTS": "${env:RESTORE_CALLBACK_ALLOWED_HOSTS}",
    }
    # SCF environment values are strings.
    assert all(isinstance(value, str) for value in variables.values())


def function_settings(yml: dict[str, Any], **deployer: str) -> Settings:
    """The function's settings as SCF would build them: serverless.yml's variables resolved with
    the deployer's values, plus what SCF itself provides (region, the role's temporary keys)."""
    deployed = {name: "" for name in env_refs()}
    deployed.update(
        RESTORE_COS_ALLOWED_BUCKETS="archive-*", RESTORE_EVENT_TDMQ_TOPIC="restore-events",
        RESTORE_EVENT_TDMQ_REGION="ap-guangzhou", RESTORE_WEBHOOK_SECRETS="s1",
        RESTORE_RECHECK_TDMQ_QUEUE="restore-rechecks",
    )
    deployed.update(deployer)
    variables = resolve(yml["inputs"]["environment"]["variables"], deployed)
    variables.update(
        TENCENTCLOUD_REGION="ap-guangzhou", TENCENTCLOUD_SECRETID="AKIDrole",
        TENCENTCLOUD_SECRETKEY="role-key", TENCENTCLOUD_SESSIONTOKEN="role-token",
    )
    return Settings.from_env(variables)


def test_rechecks_go_through_tdmq_with_delays_cmq_accepts(yml: dict[str, Any]) -> None:
    settings = function_settings(yml)
    assert settings.recheck_scheduler == "tdmq"
    assert settings.recheck_max_delay_seconds == 3600.0
    # Empty optional settings fall back to their defaults rather than failing.
    assert (settings.recheck_margin, settings.ledger, settings.callback_secret) == (
        0.5, "memory", None
    )
    scheduler = scheduler_from_settings(settings)
    assert isinstance(scheduler, TdmqScheduler)
    assert scheduler.queue == "restore-rechecks"
    assert scheduler.max_delay_seconds == 3600
    assert scheduler.endpoint is None  # the public TDMQ endpoint: no emulator on SCF
    tuned = function_settings(yml, RESTORE_RECHECK_MARGIN="1.0", RESTORE_LEDGER="gs://b/p",
                              RESTORE_CALLBACK_ALLOWED_HOSTS="hooks.example.com")
    assert (tuned.recheck_margin, tuned.ledger) == (1.0, "gs://b/p")
    assert tuned.callback_allowed_hosts == ("hooks.example.com",)


def test_the_configuration_names_only_variables_the_package_reads(yml: dict[str, Any]) -> None:
    config = (SERVERLESS_YML.parents[0] / "shared" / "config.py").read_text()
    for name in yml["inputs"]["environment"]["variables"]:
        assert f'"{name}"' in config, f"{name} is not read by shared/config.py"


def test_no_secret_is_committed(yml: dict[str, Any]) -> None:
    for path, value in walk(yml):
        if SECRET_NAME.search(path[-1]):
            assert isinstance(value, str)
            assert ENV_REF.fullmatch(value), f"{'.'.join(path)} must be an ${{env:...}} reference"
    text = SERVERLESS_YML.read_text()
    for shape in CREDENTIAL_SHAPES:
        assert not shape.search(text), shape.pattern


def test_every_variable_is_one_the_cli_resolves(yml: dict[str, Any]) -> None:
    variables = [v for value in values(yml) if isinstance(value, str)
                 for v in ANY_VARIABLE.findall(value)]
    assert variables
    assert [v for v in variables if not ENV_REF.fullmatch(v)] == []
    assert env_refs() >= {"RESTORE_WEBHOOK_SECRETS", "RESTORE_SCF_PACKAGE_DIR", "RESTORE_SCF_ROLE"}


def test_handler_resolves_to_a_callable_inside_the_package(tmp_path: Path) -> None:
    assert REAL_INDEX.is_file(), f"{REAL_INDEX} (the SCF entry module) does not exist yet"
    handler = load_yml()["inputs"]["handler"]
    module, _, function = handler.rpartition(".")
    # The package as deploy.sh lays it out (the dependencies come from the venv here; the full
    # package is imported on its own in test_scf_package.py).
    environ = scf_env(tmp_path)
    deploy(environ, "--dry-run", "--build-only")
    package = Path(environ["RESTORE_SCF_BUILD_DIR"]) / "package"
    assert (package / f"{module.replace('.', '/')}.py").is_file()
    # -I -S: no repository on the path, no .pth files (the editable install of `shared`).
    probe = f"""
import importlib, inspect, json, sys, sysconfig
sys.path[:] = [{str(package)!r}] + sys.path + [sysconfig.get_paths()["purelib"]]
mod = importlib.import_module({module!r})
func = getattr(mod, {function!r})
inspect.signature(func).bind({{}}, None)  # (event, context)
shared = importlib.import_module("shared")
print(json.dumps({{"file": mod.__file__, "shared": shared.__file__, "callable": callable(func)}}))
"""
    result = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", probe], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    assert found["callable"] is True
    assert Path(found["file"]) == package / f"{module}.py"
    assert Path(found["shared"]).is_relative_to(package)
