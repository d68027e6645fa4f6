"""The complete SCF code package, dependencies downloaded by pip for a target Python: built by
`deploy.sh scf`, then imported on its own (no virtualenv, no repository on the path) and
invoked with real-shaped API Gateway events. Slow: pip fetches (or takes from its cache) every
dependency for manylinux2014_x86_64."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.deploy._scf import (
    SERVERLESS_YML,
    WEBHOOK_SECRETS,
    deploy,
    env_refs,
    find_python,
    load_yml,
    package_size,
    recorded,
    resolve,
    scf_env,
)

pytestmark = pytest.mark.slow

LOCAL = f"{sys.version_info[0]}.{sys.version_info[1]}"
SCF_TARGET = "3.10"
BUILD_TIMEOUT = 900
# What the function's environment holds once deployed: serverless.yml's variables resolved with
# these deployment values, plus what SCF itself injects (the execution role's keys, the region).
FUNCTION_SETTINGS = {
    "RESTORE_COS_ALLOWED_BUCKETS": "archive-*",
    "RESTORE_GCS_ALLOWED_BUCKETS": "",
    "RESTORE_EVENT_TDMQ_TOPIC": "restore-events",
    "RESTORE_EVENT_TDMQ_REGION": "ap-guangzhou",
    "RESTORE_WEBHOOK_SECRETS": WEBHOOK_SECRETS,
    # deploy.sh's defaults for the re-check, ledger, callback and request-topic settings.
    "RESTORE_RECHECK_TDMQ_QUEUE": "restore-rechecks",
    "RESTORE_RECHECK_MARGIN": "",
    "RESTORE_LEDGER": "memory",
    "RESTORE_CALLBACK_SECRET": "",
    "RESTORE_CALLBACK_ALLOWED_HOSTS": "",
    "RESTORE_SCF_REQUEST_TOPIC": "restore-requests",
}
SCF_INJECTED = {
    "TENCENTCLOUD_SECRETID": "AKIDtestonly",
    "TENCENTCLOUD_SECRETKEY": "test-only-key",
    "TENCENTCLOUD_SESSIONTOKEN": "test-only-token",
    "TENCENTCLOUD_REGION": "ap-guangzhou",
    "SCF_RUNTIME": "Python3.10",
}

# Runs in the clean interpreter: the package directory is the only non-stdlib entry on sys.path.
PROBE = r"""
import hashlib, hmac, importlib.util, json, sys, time
package = sys.argv[1]
sys.path.insert(0, package)
import index

def apigw(method, body=None, headers=None, path="/restore"):
    event = {
        "requestContext": {"serviceId": "service-test", "path": path, "httpMethod": method,
                           "requestId": "req-1", "identity": {}, "sourceIp": "10.0.0.1",
                           "stage": "release"},
        "headers": {"host": "service-test.gz.apigw.tencentcs.com", **(headers or {})},
        "httpMethod": method, "path": path, "pathParameters": {}, "queryString": {},
        "queryStringParameters": {}, "headerParameters": {}, "stageVariables": {},
    }
    if body is not None:
        event["body"] = body
    return index.main_handler(event, {"request_id": "req-1"})

secret = sys.argv[2].encode()
body = "this is not json"
stamp = str(int(time.time()))
signature = hmac.new(secret, f"{stamp}.{body}".encode(), hashlib.sha256).hexdigest()
answers = {
    "get": apigw("GET"),
    "unsigned": apigw("POST", "{}", {"content-type": "application/json"}),
    "signed": apigw("POST", body, {"content-type": "application/json",
                                   "x-restore-timestamp": stamp,
                                   "x-restore-signature": "v1=" + signature}),
}
loaded = {}
for name in ("google.cloud.storage", "qcloud_cos", "tencentcloud.tdmq.v20200217.tdmq_client",
             "pydantic_core", "crcmod"):
    loaded[name] = __import__(name, fromlist=["_"]).__file__
print(json.dumps({
    "index": index.__file__,
    "answers": answers,
    "loaded": loaded,
    "absent": {n: importlib.util.find_spec(n) is None for n in ("functions_framework", "flask")},
    "version": "%d.%d" % sys.version_info[:2],
}))
"""


def function_environment() -> dict[str, str]:
    variables = load_yml()["inputs"]["environment"]["variables"]
    environ = resolve(variables, FUNCTION_SETTINGS)
    return {"PATH": "/usr/bin:/bin", **environ, **SCF_INJECTED}


def probe(python: str, package: Path) -> dict[str, Any]:
    # -I: no user site, no PYTHON* variables; -S: no site-packages at all; -B: the package
    # stays as built (SCF's code directory is read-only).
    result = subprocess.run(
        [python, "-I", "-S", "-B", "-c", PROBE, str(package), WEBHOOK_SECRETS.split(",")[0]],
        env=function_environment(), capture_output=True, text=True, timeout=120,
        cwd=package.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def check_answers(found: dict[str, Any], package: Path, version: str) -> None:
    assert found["version"] == version
    assert Path(found["index"]) == package / "index.py"
    for name, path in found["loaded"].items():
        assert Path(path).is_relative_to(package), (name, path)
    assert found["absent"] == {"functions_framework": True, "flask": True}
    answers = found["answers"]
    for answer in answers.values():
        # Exactly API Gateway's integration response, or the gateway answers with an error.
        assert set(answer) == {"isBase64Encoded", "statusCode", "headers", "body"}
        assert answer["isBase64Encoded"] is False
        assert isinstance(answer["body"], str)
    get = answers["get"]
    assert get["statusCode"] == 405
    assert "POST" in get["headers"]["Allow"]
    assert json.loads(get["body"])["error"]["code"] == "method_not_allowed"
    unsigned = answers["unsigned"]
    assert unsigned["statusCode"] == 401
    assert json.loads(unsigned["body"])["error"]["code"] == "unauthenticated"
    signed = answers["signed"]  # authenticated, then refused as a body that is not JSON
    assert signed["statusCode"] == 400, signed
    assert json.loads(signed["body"])["error"]["code"] == "invalid_json"


def check_package(package: Path, version: str) -> None:
    tag = "cpython-" + version.replace(".", "")
    for part in ("index.py", "shared/webhook.py", "google/cloud/storage/__init__.py",
                 "qcloud_cos/__init__.py", "tencentcloud/tdmq/__init__.py",
                 "pydantic/__init__.py", "crcmod/crcmod.py"):
        assert (package / part).is_file(), part
    assert list(package.glob(f"pydantic_core/_pydantic_core.{tag}-x86_64-linux-gnu.so"))
    compiled = [p for p in package.rglob("*.so") if ".cpython-" in p.name]
    assert compiled
    assert all(f".{tag}-" in p.name for p in compiled), "binaries for another Python"
    assert not list(package.glob("crcmod/*.so")), "crcmod must be its pure-Python build"
    assert not list(package.glob("functions_framework*"))
    assert not list(package.glob("flask*"))
    assert not (package / "bin").exists()


@pytest.fixture(scope="module")
def local_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`deploy.sh scf --build-only` for the interpreter running the tests, byte-compiled by it."""
    tmp = tmp_path_factory.mktemp("scf-local")
    environ = scf_env(tmp, SCF_PYTHON_VERSION=LOCAL,
                      RESTORE_SCF_COMPILE_PYTHON=find_python(LOCAL) or "none")
    result = deploy(environ, "--build-only", timeout=BUILD_TIMEOUT)
    return Path(environ["RESTORE_SCF_BUILD_DIR"]), result.stdout


def test_local_package_holds_its_dependencies_and_reports_its_size(
    local_build: tuple[Path, str],
) -> None:
    build, stdout = local_build
    package = build / "package"
    check_package(package, LOCAL)
    unzipped, zipped = package_size(stdout)
    archive = build / "restorefn-scf.zip"
    print(f"SCF package for Python {LOCAL}: {unzipped} bytes unzipped, {zipped} zipped")
    assert archive.stat().st_size == zipped
    assert 0 < zipped < unzipped
    assert unzipped == sum(p.stat().st_size for p in package.rglob("*") if p.is_file())
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
    assert {"index.py", "shared/__init__.py"} <= names  # at the root of the zip, as SCF wants
    if find_python(LOCAL):  # byte-compiled for this version, nothing else
        tag = "cpython-" + LOCAL.replace(".", "")
        assert (package / "shared" / "__pycache__" / f"config.{tag}.pyc").is_file()
        assert {p.name.split(".")[-2] for p in package.rglob("*.pyc")} == {tag}


def test_local_package_answers_api_gateway_events_on_its_own(
    local_build: tuple[Path, str],
) -> None:
    build, _ = local_build
    base = Path(sys.base_prefix) / "bin" / f"python{LOCAL}"  # the interpreter under the venv
    python = str(base) if base.is_file() else find_python(LOCAL)
    assert python, f"no Python {LOCAL} interpreter outside the virtualenv"
    found = probe(python, build / "package")
    check_answers(found, build / "package", LOCAL)


@pytest.fixture(scope="module")
def scf_deploy(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], str]:
    """A real `deploy.sh scf` for SCF's Python, against the recording fake `scf`."""
    tmp = tmp_path_factory.mktemp("scf-deploy")
    environ = scf_env(tmp, RESTORE_SCF_COMPILE_PYTHON=find_python(SCF_TARGET) or "none",
                      RESTORE_SCF_STAGE="test")
    result = deploy(environ, timeout=BUILD_TIMEOUT)
    return environ, result.stdout + result.stderr


def test_deploy_runs_scf_once_in_the_build_dir_with_every_variable(
    scf_deploy: tuple[dict[str, str], str],
) -> None:
    environ, output = scf_deploy
    build = Path(environ["RESTORE_SCF_BUILD_DIR"])
    (call,) = recorded(environ)
    assert call["args"] == ["deploy"]
    assert call["cwd"] == str(build)
    assert (build / "serverless.yml").read_bytes() == SERVERLESS_YML.read_bytes()
    assert call["unset"] == []
    assert set(call["env"]) == env_refs()
    # serverless.yml as the CLI resolves it from the environment deploy.sh passed.
    inputs = resolve(load_yml(), call["env"])["inputs"]
    assert Path(inputs["src"]) == build / "package"
    assert inputs["environment"]["variables"]["RESTORE_WEBHOOK_SECRETS"] == WEBHOOK_SECRETS
    assert inputs["name"] == "restorefn-test"
    assert inputs["events"][-1]["cos"]["parameters"]["bucket"] == (
        "archive-1250000000.cos.ap-guangzhou.myqcloud.com")
    for secret in WEBHOOK_SECRETS.split(","):
        assert secret not in output
    check_package(build / "package", SCF_TARGET)
    unzipped, zipped = package_size(output)
    print(f"SCF package for Python {SCF_TARGET}: {unzipped} bytes unzipped, {zipped} zipped")


def test_scf_package_answers_api_gateway_events_under_python_3_10(
    scf_deploy: tuple[dict[str, str], str],
) -> None:
    python = find_python(SCF_TARGET)
    if python is None:
        pytest.skip(f"no Python {SCF_TARGET} interpreter on this machine")
    package = Path(scf_deploy[0]["RESTORE_SCF_BUILD_DIR"]) / "package"
    # Byte-compiled by that interpreter for SCF's read-only code directory.
    assert (package / "shared" / "__pycache__" / "config.cpython-310.pyc").is_file()
    check_answers(probe(python, package), package, SCF_TARGET)


def test_signature_helper_matches_the_package() -> None:
    # The probe signs by hand; keep it in step with shared.auth.
    from pydantic import SecretStr

    from shared.auth import sign

    stamp = int(time.time())
    body = b"this is not json"
    expected = "v1=" + hmac.new(b"k", f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert sign(SecretStr("k"), body, stamp)["X-Restore-Signature"] == expected
