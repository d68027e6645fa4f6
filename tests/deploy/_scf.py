"""Helpers shared by the Tencent SCF deployment tests (serverless.yml and ``deploy.sh scf``)."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy.sh"
SERVERLESS_YML = ROOT / "serverless.yml"
FAKE_SCF = Path(__file__).with_name("fake_scf")
FAKE_TCCLI = Path(__file__).with_name("fake_tccli")
REAL_INDEX = ROOT / "functions" / "tencent" / "index.py"
BASH = shutil.which("bash") or "/bin/bash"

# pyproject.toml's runtime dependencies, less functions-framework: what the SCF package ships.
SCF_RUNTIME_DEPS = (
    "google-cloud-storage", "cos-python-sdk-v5", "pydantic", "tencentcloud-sdk-python-tdmq",
)
WEBHOOK_SECRETS = "test-secret-one,test-secret-two"
# The smallest valid deployment configuration.
REQUIRED_SETTINGS = {
    "RESTORE_SCF_ROLE": "restorefn-exec",
    "RESTORE_SCF_COS_TRIGGER_BUCKET": "archive-1250000000",
    "RESTORE_COS_ALLOWED_BUCKETS": "archive-*",
    "RESTORE_WEBHOOK_SECRETS": WEBHOOK_SECRETS,
}
# What the serverless-cloud-framework CLI substitutes before deploying (see
# src/libs/utils/basic.js resolveVariables): ${env:NAME}. Any other ${...} it refuses or keeps.
ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
ANY_VARIABLE = re.compile(r"\$\{[^}]*\}")


def load_yml() -> dict[str, Any]:
    data = yaml.safe_load(SERVERLESS_YML.read_text())
    assert isinstance(data, dict)
    return data


def values(node: Any) -> list[Any]:
    """Every scalar of a parsed YAML document (comments are not values: the CLI never sees them)."""
    if isinstance(node, dict):
        return [v for child in node.values() for v in values(child)]
    if isinstance(node, list):
        return [v for child in node for v in values(child)]
    return [node]


def env_refs() -> set[str]:
    """The names of every ${env:NAME} in serverless.yml's values."""
    return {name for value in values(load_yml()) if isinstance(value, str)
            for name in ENV_REF.findall(value)}


def resolve(value: Any, environ: Mapping[str, str]) -> Any:
    """serverless.yml with every ${env:NAME} replaced, as the CLI does."""
    if isinstance(value, dict):
        return {k: resolve(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, environ) for v in value]
    if isinstance(value, str):
        return ENV_REF.sub(lambda m: environ[m.group(1)], value)
    return value


def scf_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """An environment with the recording fakes `scf` and `tccli` first on PATH and a private
    build dir."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, fake in (("scf", FAKE_SCF), ("tccli", FAKE_TCCLI)):
        if not (bin_dir / name).exists():
            (bin_dir / name).symlink_to(fake)
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("RESTORE_", "SCF", "TENCENT", "FAKE_SCF", "FAKE_TCCLI",
                                    "TCCLI"))}
    environ.update(
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        FAKE_SCF_LOG=str(tmp_path / "scf.log"),
        FAKE_TCCLI_LOG=str(tmp_path / "tccli.log"),
        FAKE_SCF_ENV=" ".join(sorted(env_refs())),
        RESTORE_SCF_BUILD_DIR=str(tmp_path / "build" / "scf"),
        RESTORE_SCF_COMPILE_PYTHON="none",
        **REQUIRED_SETTINGS,
    )
    environ.update(settings)
    return environ


def deploy(environ: Mapping[str, str], *args: str, check: bool = True,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(DEPLOY), "scf", *args], env=dict(environ), capture_output=True,
                            text=True, timeout=timeout, cwd=ROOT)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def recorded(environ: Mapping[str, str]) -> list[dict[str, Any]]:
    """The fake scf's calls: {"args": [...], "cwd": str, "env": {NAME: value}}."""
    log = Path(environ["FAKE_SCF_LOG"])
    calls: list[dict[str, Any]] = []
    for line in log.read_text().splitlines() if log.exists() else []:
        kind, _, rest = line.partition(" ")
        if kind == "call":
            calls.append({"args": rest.split(), "cwd": "", "env": {}, "unset": []})
        elif kind == "cwd":
            calls[-1]["cwd"] = rest
        elif kind == "env":
            name, _, value = rest.partition("=")
            calls[-1]["env"][name] = value
        elif kind == "unset":
            calls[-1]["unset"].append(rest)
    return calls


def offline_python(tmp_path: Path) -> str:
    """An interpreter for RESTORE_PYTHON whose `-m pip` downloads nothing: `pip wheel` leaves an
    empty wheel of the pinned name in --wheel-dir, `pip install` does nothing. For tests of what
    happens after the build (policy, deploy), not of the package itself (test_scf_package)."""
    wrapper = tmp_path / "offline-python"
    wrapper.write_text(f"""#!/usr/bin/env bash
set -euo pipefail
if [[ "${{1:-}} ${{2:-}}" == "-m pip" ]]; then
    if [[ "${{3:-}}" == wheel ]]; then
        previous=""
        for word in "$@"; do
            [[ "${{previous}}" != --wheel-dir ]] || dir="${{word}}"
            previous="${{word}}"
        done
        pinned="${{!#}}"
        touch "${{dir}}/${{pinned%%==*}}-${{pinned#*==}}-py3-none-any.whl"
    fi
    exit 0
fi
exec {ROOT / ".venv" / "bin" / "python"} "$@"
""")
    wrapper.chmod(0o755)
    return str(wrapper)


def tccli_calls(environ: Mapping[str, str]) -> list[list[str]]:
    """The fake tccli's calls, each its argument list."""
    log = Path(environ["FAKE_TCCLI_LOG"])
    calls: list[list[str]] = []
    for line in log.read_text().splitlines() if log.exists() else []:
        if line == "call":
            calls.append([])
        else:
            calls[-1].append(line.removeprefix("arg "))
    return calls


def printed_commands(stdout: str) -> list[list[str]]:
    """The "+ " lines, turned back into argv lists by the shell (they are shell-quoted)."""
    commands = []
    for line in stdout.splitlines():
        if line.startswith("+ "):
            words = subprocess.run([BASH, "-c", f'printf "%s\\n" {line[2:]}'],
                                   capture_output=True, text=True, check=True).stdout
            commands.append(words.splitlines())
    return commands


def printed_settings(stdout: str) -> dict[str, str]:
    lines = stdout.splitlines()
    start = lines.index("serverless.yml settings (exported):") + 1
    settings = {}
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        name, _, value = line.strip().partition("=")
        settings[name] = value
    return settings


def package_size(stdout: str) -> tuple[int, int]:
    """(unzipped, zipped) bytes from deploy.sh's "package size" line."""
    match = re.search(r"^package size: [\d.]+ MiB unzipped \((\d+) bytes, \d+ files\), "
                      r"[\d.]+ MiB zipped \((\d+) bytes\): .+\.zip$", stdout, re.MULTILINE)
    assert match, stdout
    return int(match.group(1)), int(match.group(2))


def python_version_of(executable: str) -> str | None:
    try:
        out = subprocess.run(
            [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30,
        )
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_python(version: str) -> str | None:
    """An interpreter of exactly ``version`` (PATH, then pyenv), or None."""
    candidates = [shutil.which(f"python{version}")]
    pyenv = os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")
    candidates += sorted(glob.glob(pyenv))
    for candidate in candidates:
        if candidate and python_version_of(candidate) == version:
            return candidate
    return None
