"""The grants deploy.sh makes are exactly what the code calls.

Each platform's code paths run against the emulators through the real SDKs, configured as
deploy.sh configures the functions; every request the emulators log is mapped to the IAM
permission (Google) or CAM action and resource (Tencent) it needs, per the providers' method
pages. Then:

- sufficient: each request is allowed by the grants ``deploy.sh gcp --dry-run`` prints for the
  function's own account, or by the policy ``deploy.sh scf --print-policy`` prints;
- exact: each permission of each grant (each action on each resource of each statement) is
  needed by at least one request, so nothing is granted that the code never uses;
- not vacuous: the add-on features (overwrite, copy ACL) are denied without their setting, and
  report writes without a report bucket.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from emulators._http import LoggedRequest, RunningEmulator, serve
from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from emulators.gcs import GcsEmulator
from emulators.tdmq import TdmqEmulator
from tests.bulk.conftest import BulkHarness, gcs_job
from tests.conftest import COS_BUCKET, CollectingSink, cos_request, gcs_request, make_settings
from tests.tencent.conftest import FUNCTION_DIR, cmq_event, scf_env_vars

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy.sh"
PROJECT = "demo-proj"
ACCOUNTS = {"restore-http": "http@demo-proj.iam", "restore-pubsub": "queue@demo-proj.iam",
            "restore-recheck": "check@demo-proj.iam"}
GCS_DATA, GCS_REPORTS, GCS_LEDGER = "restore-data", "restore-reports", "restorefn-ledger"
COS_REPORTS = "archive-reports-1250000000"
REQUESTS, EVENTS, RECHECKS = "restore-requests", "restore-events", "restore-rechecks"
REGION = "ap-guangzhou"


def run_deploy(env: dict[str, str], *args: str) -> str:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("RESTORE_", "GOOGLE_CLOUD_PROJECT", "TENCENT"))}
    environ.update(env)
    result = subprocess.run([str(DEPLOY), *args], env=environ, capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout


# -- Google: what each request needs -----------------------------------------------------------
_GCS_PATH = re.compile(r"^/(?:download/|upload/)?storage/v1/b/([^/]+)(.*)$")


def gcs_needs(entry: LoggedRequest) -> tuple[str, set[str]]:
    """(bucket, permissions) one JSON API request needs (Google's method pages)."""
    match = _GCS_PATH.match(entry.path)
    assert match, entry.path
    bucket, rest = match.groups()
    query = {k.lower(): v.lower() for k, v in entry.query.items()}
    replaces = query.get("ifgenerationmatch") != "0"  # no "must not exist" precondition
    if entry.path.startswith("/upload/"):
        if entry.method == "PUT":  # the data of a resumable upload started by a POST
            return bucket, set()
        needs = {"storage.objects.create"}
        return bucket, needs | ({"storage.objects.delete"} if replaces else set())
    if rest == "" and entry.method == "GET":
        return bucket, {"storage.buckets.get"}
    if rest == "/o" and entry.method == "GET":
        return bucket, {"storage.objects.list"}
    if rest == "/o/bulkRestore" and entry.method == "POST":
        return bucket, {"storage.buckets.restore", "storage.objects.restore",
                        "storage.objects.create"}
    if rest.startswith("/operations/") and entry.method == "GET":
        return bucket, {"storage.bucketOperations.get"}
    if rest.startswith("/o/") and rest.endswith("/restore") and entry.method == "POST":
        needs = {"storage.objects.restore", "storage.objects.create"}
        if replaces:
            needs.add("storage.objects.delete")
        if query.get("copysourceacl") == "true":
            needs.add("storage.objects.setIamPolicy")
        if query.get("projection") == "full":
            needs.add("storage.objects.getIamPolicy")
        return bucket, needs
    if rest.startswith("/o/") and entry.method == "GET":
        return bucket, {"storage.objects.get"}
    if rest.startswith("/o/") and entry.method == "DELETE":
        return bucket, {"storage.objects.delete"}
    raise AssertionError(f"unmapped GCS request {entry.method} {entry.path}")


@dataclass(frozen=True)
class Binding:
    member: str
    scope: str  # "bucket", "prefix" or "project"
    name: str
    permissions: frozenset[str]

    def covers(self, bucket: str) -> bool:
        # IAM condition resource.name.startsWith("projects/_/buckets/P"): bucket and object
        # names both extend "projects/_/buckets/<bucket>", and bucket names hold no "/".
        return (self.scope == "project" or (self.scope == "bucket" and bucket == self.name)
                or (self.scope == "prefix" and bucket.startswith(self.name)))


def gcp_bindings(**settings: str) -> tuple[list[Binding], str]:
    """The storage bindings ``deploy.sh gcp --dry-run`` prints, and its --set-env-vars."""
    env = {"RESTORE_GCS_ALLOWED_BUCKETS": "restore-*", "RESTORE_GCS_REPORT_BUCKETS": GCS_REPORTS,
           "RESTORE_BULK_QUEUE": "pubsub", "RESTORE_LEDGER": f"gs://{GCS_LEDGER}/ledger",
           "RESTORE_SERVICE_ACCOUNT_HTTP": ACCOUNTS["restore-http"],
           "RESTORE_SERVICE_ACCOUNT_PUBSUB": ACCOUNTS["restore-pubsub"],
           "RESTORE_SERVICE_ACCOUNT_RECHECK": ACCOUNTS["restore-recheck"],
           "RESTORE_BUILD_DIR": settings.pop("build"), **settings}
    stdout = run_deploy(env, "gcp", "--dry-run", f"--project={PROJECT}")
    commands = [shlex.split(line[2:])[1:] for line in stdout.splitlines()
                if line.startswith("+ ")]
    roles = {words[3]: frozenset(_flag(words, "permissions").split(","))
             for words in commands if words[:3] == ["iam", "roles", "create"]}
    bindings = []
    for words in commands:
        if "add-iam-policy-binding" not in words or "roles/" not in _flag(words, "role"):
            continue
        role = _flag(words, "role").rsplit("/", 1)[-1]
        if role not in roles:
            continue  # a predefined role: topics, queue, secrets, actAs
        member = _flag(words, "member").removeprefix("serviceAccount:")
        if words[:2] == ["storage", "buckets"]:
            bindings.append(Binding(member, "bucket", words[3].removeprefix("gs://"),
                                    roles[role]))
        else:
            condition = _flag(words, "condition")
            prefix = re.search(r'startsWith\("projects/_/buckets/([^"]*)"\)', condition)
            bindings.append(Binding(member, "prefix", prefix.group(1), roles[role]) if prefix
                            else Binding(member, "project", words[2], roles[role]))
    env_vars = next(_flag(words, "set-env-vars") for words in commands
                    if words[:2] == ["functions", "deploy"])
    return bindings, env_vars


def _flag(words: list[str], name: str) -> str:
    return next(w.split("=", 1)[1] for w in words if w.startswith(f"--{name}="))


@dataclass
class Segment:
    """The GCS requests one function made."""

    function: str
    entries: list[LoggedRequest] = field(default_factory=list)


def denied(bindings: list[Binding], segment: Segment) -> list[str]:
    account = ACCOUNTS[segment.function]
    problems = []
    for entry in segment.entries:
        bucket, needs = gcs_needs(entry)
        granted = set().union(*(b.permissions for b in bindings
                                if b.member == account and b.covers(bucket)))
        if needs - granted:
            problems.append(f"{segment.function}: {entry.method} {entry.path} needs "
                            f"{sorted(needs - granted)}")
    return problems


def unused(bindings: list[Binding], segments: list[Segment]) -> list[str]:
    """Permissions granted on a scope that no request on that scope needed."""
    used: dict[tuple[str, str], set[str]] = {}
    for segment in segments:
        for entry in segment.entries:
            bucket, needs = gcs_needs(entry)
            used.setdefault((ACCOUNTS[segment.function], bucket), set()).update(needs)
    problems = []
    for binding in bindings:
        needed = set().union(*(perms for (member, bucket), perms in used.items()
                               if member == binding.member and binding.covers(bucket)))
        for permission in sorted(binding.permissions - needed):
            problems.append(f"{binding.scope} {binding.name}: {permission} never used")
    return problems


@pytest.fixture
def gcs() -> Iterator[RunningEmulator]:
    with serve(GcsEmulator(bulk_restore_seconds=60.0)) as running:
        for bucket in (GCS_DATA, GCS_REPORTS, GCS_LEDGER):
            running.emulator.create_bucket(bucket)
        yield running


def soft_deleted(gcs: RunningEmulator, name: str, data: bytes = b"x") -> None:
    gcs.emulator.put_object(GCS_DATA, name, data)
    gcs.emulator.delete_object(GCS_DATA, name)


def harness(gcs: RunningEmulator) -> BulkHarness:
    """One function instance as deploy.sh configures it: a gs:// ledger, bulk chunks on a queue."""
    return BulkHarness(lambda **kw: make_settings(gcs=gcs, gcs_allowed_buckets=("restore-*",),
                                                  ledger=f"gs://{GCS_LEDGER}/ledger", **kw),
                       CollectingSink(), instances=1)


def report_ref(job_id: str) -> dict[str, Any]:
    return {"provider": "gcs", "bucket": GCS_DATA, "job_id": job_id,
            "report": {"bucket": GCS_REPORTS, "prefix": "reports"}}


def since(gcs: RunningEmulator, start: int) -> list[LoggedRequest]:
    return gcs.log.entries()[start:]


def test_google_grants_allow_every_gcs_call_of_each_function_and_nothing_more(
    gcs: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindings, env_vars = gcp_bindings(build=str(tmp_path / "build"))
    # What deploy.sh sets that changes which calls the SDK makes.
    for assignment in env_vars.removeprefix("^|^").split("|"):
        name, _, value = assignment.partition("=")
        if name.startswith("DISABLE_GCS_"):
            monkeypatch.setenv(name, value)
    for name in ("a", "logs/1", "logs/2", "listed/1", "server/1"):
        soft_deleted(gcs, name)
    gcs.emulator.put_object(GCS_REPORTS, "manifests/m.csv", b"listed/1\n")

    # restore-http / restore-pubsub: the same code (requests, status, bulk jobs and chunks).
    start = len(gcs.log.entries())
    starter = harness(gcs)
    service, bulk = starter.service, starter.bulk
    assert service.handle(gcs_request("a", bucket=GCS_DATA)).outcome.status.value == "completed"
    # Another request for the same object meets the live copy: its ifGenerationMatch=0 fails
    # and both copies are read to tell our restore from a conflict.
    again = service.handle(gcs_request("a", bucket=GCS_DATA, request_id="second"))
    assert again.outcome.status.value == "already_restored"
    live = service.status({"provider": "gcs", "bucket": GCS_DATA, "object": "a"})
    assert live.state.value == "live"
    missing = service.status({"provider": "gcs", "bucket": GCS_DATA, "object": "never"})
    assert missing.state.value == "not_found"  # read the bucket's soft delete policy to say so
    starter.run(gcs_job(bucket=GCS_DATA, report={"bucket": GCS_REPORTS, "prefix": "reports"},
                        job_id="per-object", mode="per_object", selection={"prefix": "logs/"}))
    starter.run(gcs_job(bucket=GCS_DATA, report={"bucket": GCS_REPORTS, "prefix": "reports"},
                        job_id="manifest", selection={"manifest": {
                            "bucket": GCS_REPORTS, "key": "manifests/m.csv"}}))
    server = bulk.submit(gcs_job(bucket=GCS_DATA, report={"bucket": GCS_REPORTS,
                                                          "prefix": "reports"},
                                 job_id="server", mode="server_side",
                                 selection={"prefix": "server/"}))
    assert server.operation is not None
    assert bulk.progress(report_ref("server")).state == "running"  # the status route
    starter.close()
    starts = since(gcs, start)

    # restore-recheck: the delayed look that finds the operation done and finishes the job.
    gcs.emulator.clock.advance(61)
    start = len(gcs.log.entries())
    checker = harness(gcs)
    assert checker.bulk.handle_poll({"job": report_ref("server"), "poll": 1}).state == "completed"
    checker.close()
    recheck = since(gcs, start)

    segments = [Segment("restore-http", starts), Segment("restore-pubsub", starts),
                Segment("restore-recheck", recheck)]
    assert [problem for s in segments for problem in denied(bindings, s)] == []
    assert unused(bindings, segments) == []
    # The SDK's background bucket reads are off: no storage.buckets.get outside the status route.
    bucket_reads = [e for e in starts + recheck if gcs_needs(e)[1] == {"storage.buckets.get"}]
    assert [(e.path, e.query.get("fields")) for e in bucket_reads] == [
        (f"/storage/v1/b/{GCS_DATA}", None)]


@pytest.mark.parametrize(
    ("setting", "request_fields", "permission"),
    [
        ("RESTORE_GCS_ALLOW_OVERWRITE", {"allow_overwrite": True}, "storage.objects.delete"),
        ("RESTORE_GCS_COPY_ACL", {"copy_source_acl": True}, "storage.objects.setIamPolicy"),
    ],
)
def test_optional_permissions_are_needed_and_granted_only_with_their_setting(
    gcs: RunningEmulator, tmp_path: Path, setting: str, request_fields: dict[str, Any],
    permission: str,
) -> None:
    soft_deleted(gcs, "doc", b"deleted copy")
    gcs.emulator.put_object(GCS_DATA, "doc", b"live copy")  # overwritten when allowed
    start = len(gcs.log.entries())
    instance = harness(gcs)
    instance.service.handle(gcs_request("doc", bucket=GCS_DATA, **request_fields))
    instance.close()
    segment = Segment("restore-http", [e for e in since(gcs, start)
                                       if e.path.endswith("/o/doc/restore")])
    assert len(segment.entries) == 1

    without, _ = gcp_bindings(build=str(tmp_path / "a"))
    assert denied(without, segment) == [
        f"restore-http: POST /storage/v1/b/{GCS_DATA}/o/doc/restore needs ['{permission}']"]
    with_setting, _ = gcp_bindings(build=str(tmp_path / "b"), **{setting: "1"})
    assert denied(with_setting, segment) == []


# -- Tencent: what each request needs ----------------------------------------------------------
def cos_call(entry: LoggedRequest) -> tuple[str, str]:
    """(CAM action, resource) one COS request needs."""
    bucket, _, host = entry.host.partition(".cos.")
    region = host.split(".", 1)[0]
    appid = bucket.rsplit("-", 1)[1]
    key = entry.path.lstrip("/")
    if entry.method == "HEAD":
        action = "HeadObject"
    elif entry.method == "POST" and "restore" in entry.query:
        action = "PostObjectRestore"
    elif entry.method == "GET" and not key:
        action = "GetBucket"
    elif entry.method == "GET":
        action = "GetObject"
    elif entry.method == "PUT":
        action = "PutObject"
    else:
        raise AssertionError(f"unmapped COS request {entry.method} {entry.path}")
    return f"name/cos:{action}", f"qcs::cos:{region}:uid/{appid}:{bucket}/{key}"


def _matches(pattern: str, resource: str) -> bool:
    """CAM resource matching: '*' matches any run of characters."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), resource) is not None


def allowing(policy: dict[str, Any], action: str, resource: str) -> set[tuple[int, str, str]]:
    """The (statement, action, resource pattern) triples that allow the call."""
    return {(i, action, pattern) for i, statement in enumerate(policy["statement"])
            if statement["effect"] == "allow" and action in statement["action"]
            for pattern in statement["resource"] if _matches(pattern, resource)}


def grants_of(policy: dict[str, Any]) -> set[tuple[int, str, str]]:
    return {(i, action, pattern) for i, statement in enumerate(policy["statement"])
            for action in statement["action"] for pattern in statement["resource"]}


def scf_policy(**settings: str) -> dict[str, Any]:
    env = {"RESTORE_COS_ALLOWED_BUCKETS": "archive-*",
           "RESTORE_SCF_COS_TRIGGER_BUCKET": COS_BUCKET, **settings}
    loaded: dict[str, Any] = json.loads(run_deploy(env, "scf", "--print-policy"))
    return loaded


@pytest.fixture
def tdmq() -> Iterator[RunningEmulator]:
    emulator = TdmqEmulator(credentials={DEFAULT_SECRET_ID: DEFAULT_SECRET_KEY},
                            topics=[REQUESTS, EVENTS], queues=[RECHECKS], push_interval=None)
    try:
        with serve(emulator) as running:
            yield running
    finally:
        emulator.close()


@pytest.fixture
def scf(monkeypatch: pytest.MonkeyPatch, cos_emulator: RunningEmulator,
        tdmq: RunningEmulator) -> Iterator[ModuleType]:
    """main_handler configured as serverless.yml configures it (TDMQ sink, re-checks, chunks)."""
    for name in list(os.environ):
        if name.startswith(("RESTORE_", "COS_", "TENCENTCLOUD_", "TDMQ_", "GCS_", "GOOGLE_")):
            monkeypatch.delenv(name)
    env = scf_env_vars(cos_emulator.url, "http://127.0.0.1:9")
    env.update(
        RESTORE_COS_ALLOWED_BUCKETS="archive-*", TDMQ_ENDPOINT=tdmq.url,
        TENCENTCLOUD_REGION=REGION, RESTORE_EVENT_SINK="tdmq", RESTORE_EVENT_TDMQ_TOPIC=EVENTS,
        RESTORE_EVENT_TDMQ_REGION=REGION, RESTORE_RECHECK_SCHEDULER="tdmq",
        RESTORE_RECHECK_TDMQ_QUEUE=RECHECKS, RESTORE_BULK_QUEUE="tdmq",
        RESTORE_BULK_TDMQ_TOPIC=REQUESTS,
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(str(FUNCTION_DIR))
    import index

    index.reset_service()
    try:
        yield index
    finally:
        index.reset_service()


def test_the_scf_policy_allows_every_call_of_the_function_and_nothing_more(
    scf: ModuleType, cos_emulator: RunningEmulator, tdmq: RunningEmulator
) -> None:
    policy = scf_policy(RESTORE_COS_REPORT_BUCKETS=COS_REPORTS)
    cos = cos_emulator.emulator
    cos.create_bucket(COS_REPORTS)
    for key in ("one.bin", "bulk/1.gz", "bulk/2.gz", "listed/1.gz"):
        cos.put_object(COS_BUCKET, key, b"x", "ARCHIVE")
    cos.put_object(COS_REPORTS, "manifests/m.csv", b"listed/1.gz\n", "STANDARD")
    report = {"bucket": COS_REPORTS, "prefix": "reports"}
    job = {"kind": "restorefn.bulk.v1", "provider": "cos", "bucket": COS_BUCKET,
           "region": REGION, "days": 2, "tier": "Standard", "report": report}

    # A restore (HEAD, POST restore, the initiated event, its first re-check scheduled), then
    # a listed bulk job and a manifest one, their chunks brought back from the request topic.
    scf.main_handler(cmq_event(json.dumps(cos_request("one.bin"))), {})
    scf.main_handler(cmq_event(json.dumps({**job, "job_id": "listed",
                                           "selection": {"prefix": "bulk/"}})), {})
    scf.main_handler(cmq_event(json.dumps({**job, "job_id": "manifest", "selection": {
        "manifest": {"bucket": COS_REPORTS, "key": "manifests/m.csv"}}})), {})
    chunks = [m["body"] for m in tdmq.emulator.topic_messages(REQUESTS)]
    assert len(chunks) == 2
    scf.main_handler(cmq_event(*chunks), {})
    assert sorted(r["key"] for r in cos.restore_requests()) == [
        "bulk/1.gz", "bulk/2.gz", "listed/1.gz", "one.bin"]

    used: set[tuple[int, str, str]] = set()
    for entry in cos_emulator.log.entries():
        action, resource = cos_call(entry)
        allowed = allowing(policy, action, resource)
        assert allowed, f"{action} on {resource} is not allowed"
        used |= allowed
    # TDMQ: the actions from the request log, the topics and queue from what they received
    # (the emulator refuses a topic or queue of another region than the request's).
    actions = {e.headers["x-tc-action"] for e in tdmq.log.entries()}
    assert actions == {"PublishCmqMsg", "SendCmqMsg"}
    for topic in (REQUESTS, EVENTS):
        assert tdmq.emulator.topic_messages(topic)
        resource = f"qcs::tdmq:{REGION}::topic/{topic}"
        assert allowing(policy, "name/tdmq:PublishCmqMsg", resource), resource
        used |= allowing(policy, "name/tdmq:PublishCmqMsg", resource)
    assert tdmq.emulator.queue_messages(RECHECKS)
    resource = f"qcs::tdmq:{REGION}::queue/{RECHECKS}"
    assert allowing(policy, "name/tdmq:SendCmqMsg", resource)
    used |= allowing(policy, "name/tdmq:SendCmqMsg", resource)
    # Every action on every resource of every statement was needed by some call.
    assert grants_of(policy) - used == set()

    # Without a report bucket the report writes are what gets denied.
    bare = scf_policy()
    refused = {cos_call(e) for e in cos_emulator.log.entries()
               if not allowing(bare, *cos_call(e))}
    assert refused and {action for action, _ in refused} <= {
        "name/cos:GetObject", "name/cos:PutObject"}
    assert all(f":{COS_REPORTS}/" in resource for _, resource in refused)
