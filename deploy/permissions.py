"""The exact permissions each deployed function needs, derived from the deployment's settings.

One place says what the code calls and what that requires, so ``deploy.sh`` grants exactly
that and the README's Permissions tables can be checked against it (tests/deploy). Every
permission below is there because of a code path:

- GCS restore (``shared.providers.gcs``): ``objects.restore`` needs ``storage.objects.restore``
  and ``storage.objects.create``; replacing a live object also ``storage.objects.delete``
  (only when ``allow_overwrite``; without it the call carries ``ifGenerationMatch=0``);
  ``copySourceAcl`` needs ``storage.objects.setIamPolicy`` and ``projection=full`` on a bucket
  with fine-grained ACLs ``storage.objects.getIamPolicy``. Finding the newest soft-deleted
  generation lists with ``softDeleted=true`` (``storage.objects.list``); telling our own
  earlier restore from a conflict reads the live and the soft-deleted object
  (``storage.objects.get``); the status route reads the bucket's soft delete policy
  (``storage.buckets.get``, optional: a denial is answered as ``not_found``).
- GCS bulk (``shared.bulk``): listings (``storage.objects.list``), manifests
  (``storage.objects.get``), ``objects.bulkRestore`` (``storage.buckets.restore``) and its
  operation, polled by whichever function looks next (``storage.bucketOperations.get``), and
  report files written whole, possibly twice (create, and delete to replace one), read and
  listed.
- The ``gs://`` ledger (``shared.ledger.stores.GcsStore``): create-if-absent, read, replace and
  delete small objects; it never lists.
- Events (``shared.sinks.pubsub``): ``topics.publish``; bulk chunks go to the request topic the
  same way. Re-checks (``shared.schedulers.cloudtasks``): ``tasks.create`` with an OIDC token
  of the invoker account, hence ``iam.serviceAccounts.actAs`` on that account.
- Tencent (``shared.providers.cos``, ``shared.bulk.stores``, ``shared.sinks.tdmq``,
  ``shared.schedulers.tdmq``): HEAD Object, POST Object restore, GET Bucket (bulk listing and
  report listing), GET/PUT Object (report files and manifests in the report buckets),
  ``PublishCmqMsg`` (events; bulk chunks to the request topic) and ``SendCmqMsg`` (re-checks).

Bucket allowlists become resources: an exact name is that bucket; ``prefix*`` is every bucket
whose name starts with ``prefix`` (an IAM condition on Google, a wildcard resource on Tencent).
Any other glob cannot be expressed as a grant and is refused.

Run by deploy.sh with the settings it resolved (stdlib only: any Python 3.10 runs it)::

    python deploy/permissions.py gcp-plan --project P ...     # roles, then grants, as TSV
    python deploy/permissions.py cam-policy --cos-buckets ...  # the CAM policy document (JSON)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

GLOB_CHARS = frozenset("*?[")


class PlanError(ValueError):
    """A setting that cannot become a least-privilege grant; the message says which and why."""


# -- Google ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Role:
    """A project custom role: deploy.sh creates it, or updates it to exactly these permissions."""

    id: str
    title: str
    permissions: tuple[str, ...]
    description: str


GCS_RESTORE = Role(
    "restorefnGcsRestore", "restorefn: restore soft-deleted objects",
    ("storage.objects.create", "storage.objects.restore"),
    "objects.restore of a soft-deleted generation (a new live object)",
)
GCS_READ = Role(
    "restorefnGcsRead", "restorefn: read objects and soft-deleted generations",
    ("storage.buckets.get", "storage.objects.get", "storage.objects.list"),
    "the newest soft-deleted generation, the live object a restore met, the status route",
)
GCS_OVERWRITE = Role(
    "restorefnGcsOverwrite", "restorefn: replace live objects on restore",
    ("storage.objects.delete",),
    "a restore with allow_overwrite that replaces a live object",
)
GCS_ACL = Role(
    "restorefnGcsAcl", "restorefn: copy object ACLs on restore",
    ("storage.objects.getIamPolicy", "storage.objects.setIamPolicy"),
    "copySourceAcl=true, or projection=full on buckets with fine-grained ACLs",
)
GCS_BULK = Role(
    "restorefnGcsBulk", "restorefn: bulk restore",
    ("storage.buckets.restore",),
    "objects.bulkRestore (server-side bulk jobs)",
)
GCS_OPERATIONS = Role(
    "restorefnGcsOperations", "restorefn: poll bulk restore operations",
    ("storage.bucketOperations.get",),
    "the bulkRestore operation, polled by the status route and the re-check function",
)
GCS_REPORTS = Role(
    "restorefnGcsReports", "restorefn: bulk job reports",
    ("storage.objects.create", "storage.objects.delete", "storage.objects.get",
     "storage.objects.list"),
    "bulk report files: written whole (replaced when written again), read and listed",
)
GCS_FILES = Role(
    "restorefnGcsFiles", "restorefn: ledger and job files",
    ("storage.objects.create", "storage.objects.delete", "storage.objects.get"),
    "the gs:// ledger (create-if-absent, read, compare-and-swap replace, delete); a bulk "
    "operation's record and summary, for restore-recheck, which never lists reports",
)
WORKFLOWS_CALLBACKS = Role(
    "restorefnWorkflowsCallbacks", "restorefn: Workflows callbacks",
    ("workflows.callbacks.send",),
    "callbacks to a Cloud Workflows callback endpoint (workflowexecutions.googleapis.com)",
)
CUSTOM_ROLES = (GCS_RESTORE, GCS_READ, GCS_OVERWRITE, GCS_ACL, GCS_BULK, GCS_OPERATIONS,
                GCS_REPORTS, GCS_FILES, WORKFLOWS_CALLBACKS)

PUBSUB_PUBLISHER = "roles/pubsub.publisher"  # pubsub.topics.publish
TASKS_ENQUEUER = "roles/cloudtasks.enqueuer"  # cloudtasks.tasks.create
SERVICE_ACCOUNT_USER = "roles/iam.serviceAccountUser"  # iam.serviceAccounts.actAs
SECRET_ACCESSOR = "roles/secretmanager.secretAccessor"  # noqa: S105 (a role name)

# deploy.sh deploys them in this order; restore-recheck only looks at restores and operations.
FUNCTIONS = ("restore-recheck", "restore-http", "restore-pubsub")
STARTS_RESTORES = frozenset({"restore-http", "restore-pubsub"})


@dataclass(frozen=True)
class Scope:
    """Where a bucket grant applies: one bucket, or every bucket whose name has this prefix."""

    kind: str  # "bucket" or "bucket-prefix"
    name: str


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def bucket_scopes(patterns: Iterable[str], variable: str) -> list[Scope]:
    """Allowlist patterns as grant scopes; refuses what no grant can express."""
    scopes: list[Scope] = []
    for pattern in patterns:
        if not GLOB_CHARS & set(pattern):
            scope = Scope("bucket", pattern)
        elif pattern.endswith("*") and len(pattern) > 1 and not GLOB_CHARS & set(pattern[:-1]):
            scope = Scope("bucket-prefix", pattern[:-1])
        else:
            raise PlanError(
                f"{variable}: {pattern!r} cannot be granted as least privilege: use exact bucket "
                "names or a prefix ending in one '*' (e.g. restore-*)"
            )
        if scope not in scopes:
            scopes.append(scope)
    return scopes


def check_within(patterns: Iterable[str], allowed: Sequence[str], variable: str,
                 allow_variable: str) -> None:
    """Each of ``patterns`` names only buckets the allowlist lets the function touch (it refuses
    the others itself, so a grant on them would be unused)."""
    for pattern in patterns:
        if pattern.endswith("*"):
            prefix = pattern[:-1]
            covered = any(a.endswith("*") and not GLOB_CHARS & set(a[:-1])
                          and prefix.startswith(a[:-1]) for a in allowed)
        else:
            covered = any(fnmatchcase(pattern, a) for a in allowed)
        if not covered:
            raise PlanError(f"{variable}: {pattern!r} is outside {allow_variable}, so the "
                            "functions would refuse it")


@dataclass(frozen=True)
class Grant:
    """One IAM binding: ``role`` for ``member`` on ``target`` (what ``kind`` says it is)."""

    kind: str  # bucket, bucket-prefix, topic, secret, service-account, queue, project
    target: str
    member: str
    role: str

    def line(self) -> str:
        return "\t".join((self.kind, self.target, self.member, self.role))


@dataclass(frozen=True)
class GcpSettings:
    project: str
    accounts: dict[str, str]  # function name -> runtime service account email
    invoker: str
    event_topic: str
    request_topic: str
    queue: str
    secrets: tuple[str, ...]
    gcs_buckets: tuple[str, ...] = ()
    gcs_report_buckets: tuple[str, ...] = ()
    bulk: bool = False
    ledger: str = "memory"
    allow_overwrite: bool = False
    copy_acl: bool = False
    workflows_callbacks: bool = False


def ledger_bucket(spec: str) -> str | None:
    """The bucket of a ``gs://BUCKET/PREFIX`` ledger; None for ``memory``."""
    if spec in ("", "memory"):
        return None
    if spec.startswith("gs://") and spec[len("gs://"):].partition("/")[0]:
        return spec[len("gs://"):].partition("/")[0]
    raise PlanError("RESTORE_LEDGER must be memory or gs://BUCKET/PREFIX")


def function_needs(function: str, s: GcpSettings) -> list[tuple[str, str, Role | str]]:
    """(kind, target, role) for one function: a custom Role, or a predefined role's name."""
    gcs = bucket_scopes(s.gcs_buckets, "RESTORE_GCS_ALLOWED_BUCKETS")
    reports = bucket_scopes(s.gcs_report_buckets, "RESTORE_GCS_REPORT_BUCKETS")
    needs: list[tuple[str, str, Role | str]] = []

    def on(scopes: list[Scope], role: Role) -> None:
        needs.extend((scope.kind, scope.name, role) for scope in scopes)

    starts = function in STARTS_RESTORES
    if starts:
        on(gcs, GCS_RESTORE)
        on(gcs, GCS_READ)
        if s.allow_overwrite:
            on(gcs, GCS_OVERWRITE)
        if s.copy_acl:
            on(gcs, GCS_ACL)
        if s.bulk:
            on(gcs, GCS_BULK)
    if s.bulk:
        on(gcs, GCS_OPERATIONS)
        # Planners and workers list report parts; the operation poll only reads and writes.
        on(reports, GCS_REPORTS if starts else GCS_FILES)
    ledger = ledger_bucket(s.ledger)
    if ledger is not None:
        needs.append(("bucket", ledger, GCS_FILES))
    needs.append(("topic", s.event_topic, PUBSUB_PUBLISHER))
    if s.bulk and starts:
        needs.append(("topic", s.request_topic, PUBSUB_PUBLISHER))  # chunks, leftovers
    needs.append(("queue", s.queue, TASKS_ENQUEUER))
    needs.append(("service-account", s.invoker, SERVICE_ACCOUNT_USER))
    needs.extend(("secret", secret, SECRET_ACCESSOR) for secret in s.secrets)
    if s.workflows_callbacks:
        needs.append(("project", s.project, WORKFLOWS_CALLBACKS))
    return needs


def validate_gcp(s: GcpSettings) -> None:
    bucket_scopes(s.gcs_buckets, "RESTORE_GCS_ALLOWED_BUCKETS")
    bucket_scopes(s.gcs_report_buckets, "RESTORE_GCS_REPORT_BUCKETS")
    check_within(s.gcs_report_buckets, s.gcs_buckets, "RESTORE_GCS_REPORT_BUCKETS",
                 "RESTORE_GCS_ALLOWED_BUCKETS")
    if s.bulk and s.gcs_buckets and not s.gcs_report_buckets:
        raise PlanError("RESTORE_BULK_QUEUE=pubsub: set RESTORE_GCS_REPORT_BUCKETS to the "
                        "buckets GCS bulk reports are written to (they must be allowed too)")
    ledger_bucket(s.ledger)


def role_name(project: str, role: Role | str) -> str:
    return role if isinstance(role, str) else f"projects/{project}/roles/{role.id}"


def gcp_plan(s: GcpSettings) -> tuple[list[Role], list[Grant]]:
    """The custom roles the grants use, and every grant once (one shared account: the union)."""
    validate_gcp(s)
    roles: list[Role] = []
    grants: list[Grant] = []
    for function in FUNCTIONS:
        member = f"serviceAccount:{s.accounts[function]}"
        for kind, target, role in function_needs(function, s):
            if isinstance(role, Role) and role not in roles:
                roles.append(role)
            grant = Grant(kind, target, member, role_name(s.project, role))
            if grant not in grants:
                grants.append(grant)
    roles.sort(key=CUSTOM_ROLES.index)
    return roles, grants


# -- Tencent ---------------------------------------------------------------------------------
COS_RESTORE_ACTIONS = ("name/cos:HeadObject", "name/cos:PostObjectRestore")
COS_LIST_ACTIONS = ("name/cos:GetBucket",)
COS_REPORT_ACTIONS = ("name/cos:GetBucket", "name/cos:GetObject", "name/cos:PutObject")
TDMQ_PUBLISH = "name/tdmq:PublishCmqMsg"
TDMQ_SEND = "name/tdmq:SendCmqMsg"
_COS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]*-([0-9]+)$")


@dataclass(frozen=True)
class CamSettings:
    cos_buckets: tuple[str, ...]
    cos_regions: tuple[str, ...]
    appid: str = ""  # for prefix patterns, which carry no APPID
    uin: str = ""  # the TDMQ resources' owner; empty: the account creating the policy
    cos_report_buckets: tuple[str, ...] = ()
    bulk: bool = False
    event_topic: str = ""
    event_region: str = ""
    bulk_topic: str = ""
    recheck_queue: str = ""
    recheck_region: str = ""


def cos_resources(patterns: Sequence[str], s: CamSettings, variable: str) -> list[str]:
    """``qcs::cos:REGION:uid/APPID:BUCKET-APPID/*`` per region, or ``...:PREFIX*`` for a prefix."""
    resources: list[str] = []
    for scope in bucket_scopes(patterns, variable):
        if scope.kind == "bucket":
            match = _COS_BUCKET.match(scope.name)
            if match is None:
                raise PlanError(f"{variable}: {scope.name!r} is not a COS bucket name "
                                "(BucketName-APPID)")
            appid, path = match.group(1), f"{scope.name}/*"
        else:
            if not s.appid:
                raise PlanError(f"{variable}: the prefix {scope.name + '*'!r} names no APPID: "
                                "set RESTORE_COS_APPID")
            appid, path = s.appid, f"{scope.name}*"
        resources.extend(f"qcs::cos:{region}:uid/{appid}:{path}" for region in s.cos_regions)
    return resources


def tdmq_resource(s: CamSettings, region: str, kind: str, name: str) -> str:
    account = f"uin/{s.uin}" if s.uin else ""
    return f"qcs::tdmq:{region}:{account}:{kind}/{name}"


def _statement(actions: Sequence[str], resources: Sequence[str]) -> dict[str, Any]:
    return {"effect": "allow", "action": list(actions), "resource": list(resources)}


def cam_policy(s: CamSettings) -> dict[str, Any]:
    """The CAM policy document (version 2.0): each statement one code path's actions."""
    if s.cos_buckets and not s.cos_regions:
        raise PlanError("no COS region to grant in: set RESTORE_COS_REGIONS")
    check_within(s.cos_report_buckets, s.cos_buckets, "RESTORE_COS_REPORT_BUCKETS",
                 "RESTORE_COS_ALLOWED_BUCKETS")
    statements: list[dict[str, Any]] = []
    if s.cos_buckets:
        buckets = cos_resources(s.cos_buckets, s, "RESTORE_COS_ALLOWED_BUCKETS")
        statements.append(_statement(COS_RESTORE_ACTIONS, buckets))
        if s.bulk:
            statements.append(_statement(COS_LIST_ACTIONS, buckets))
    if s.bulk and s.cos_report_buckets:
        reports = cos_resources(s.cos_report_buckets, s, "RESTORE_COS_REPORT_BUCKETS")
        statements.append(_statement(COS_REPORT_ACTIONS, reports))
    topics = []
    if s.event_topic:
        topics.append(tdmq_resource(s, s.event_region, "topic", s.event_topic))
    if s.bulk and s.bulk_topic:
        # shared.sinks.tdmq_publisher: chunks go out in the event sink's region.
        chunk_topic = tdmq_resource(s, s.event_region, "topic", s.bulk_topic)
        if chunk_topic not in topics:
            topics.append(chunk_topic)
    if topics:
        statements.append(_statement((TDMQ_PUBLISH,), topics))
    if s.recheck_queue:
        statements.append(_statement(
            (TDMQ_SEND,), (tdmq_resource(s, s.recheck_region, "queue", s.recheck_queue),)))
    if not statements:
        raise PlanError("nothing to grant: set RESTORE_COS_ALLOWED_BUCKETS")
    return {"version": "2.0", "statement": statements}


def derive_appid(explicit: str, trigger_bucket: str, buckets: Iterable[str]) -> str:
    """RESTORE_COS_APPID, else the trigger bucket's, else the one all exact bucket names share."""
    if explicit:
        if not explicit.isdigit():
            raise PlanError("RESTORE_COS_APPID must be the account's numeric APPID")
        return explicit
    match = _COS_BUCKET.match(trigger_bucket.split(".", 1)[0])
    if match:
        return match.group(1)
    appids = {m.group(1) for m in map(_COS_BUCKET.match, buckets) if m}
    return appids.pop() if len(appids) == 1 else ""


def warnings_for(s: CamSettings) -> list[str]:
    if s.bulk and s.cos_buckets and not s.cos_report_buckets:
        return ["no RESTORE_COS_REPORT_BUCKETS: COS bulk jobs (other than dry runs) will be "
                "denied writing their reports"]
    return []


# -- Tencent CLI answers -----------------------------------------------------------------------
def policy_id(answer: dict[str, Any], name: str) -> int | None:
    """The id of the custom policy named exactly ``name`` in a ListPolicies answer."""
    for entry in _entries(answer):
        if entry.get("PolicyName") == name and entry.get("PolicyId") is not None:
            return int(entry["PolicyId"])
    return None


def is_attached(answer: dict[str, Any], name: str) -> bool:
    """Whether a ListAttachedRolePolicies answer lists the policy ``name``."""
    return any(entry.get("PolicyName") == name for entry in _entries(answer))


def _entries(answer: dict[str, Any]) -> list[dict[str, Any]]:
    body = answer.get("Response", answer)
    entries = body.get("List") or []
    return [entry for entry in entries if isinstance(entry, dict)]


# -- command line ----------------------------------------------------------------------------
def _flag(value: str) -> bool:
    if value not in ("0", "1"):
        raise argparse.ArgumentTypeError("0 or 1")
    return value == "1"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deploy/permissions.py")
    sub = parser.add_subparsers(dest="command", required=True)

    gcp = sub.add_parser("gcp-plan", help="custom roles and grants, one TSV line each")
    gcp.add_argument("--project", required=True)
    for function in FUNCTIONS:
        gcp.add_argument(f"--account-{function.removeprefix('restore-')}", required=True)
    gcp.add_argument("--invoker", required=True)
    gcp.add_argument("--event-topic", required=True)
    gcp.add_argument("--request-topic", required=True)
    gcp.add_argument("--queue", required=True)
    gcp.add_argument("--secret", action="append", default=[])
    gcp.add_argument("--gcs-buckets", default="")
    gcp.add_argument("--gcs-report-buckets", default="")
    gcp.add_argument("--bulk-queue", choices=("none", "pubsub"), default="none")
    gcp.add_argument("--ledger", default="memory")
    gcp.add_argument("--allow-overwrite", type=_flag, default=False)
    gcp.add_argument("--copy-acl", type=_flag, default=False)
    gcp.add_argument("--workflows-callbacks", type=_flag, default=False)

    cam = sub.add_parser("cam-policy", help="the CAM policy document")
    cam.add_argument("--cos-buckets", default="")
    cam.add_argument("--cos-regions", default="")
    cam.add_argument("--appid", default="")
    cam.add_argument("--trigger-bucket", default="")
    cam.add_argument("--uin", default="")
    cam.add_argument("--cos-report-buckets", default="")
    cam.add_argument("--bulk", type=_flag, default=False)
    cam.add_argument("--event-topic", default="")
    cam.add_argument("--event-region", default="")
    cam.add_argument("--bulk-topic", default="")
    cam.add_argument("--recheck-queue", default="")
    cam.add_argument("--recheck-region", default="")
    cam.add_argument("--compact", action="store_true", help="one line")

    found = sub.add_parser("policy-id", help="PolicyId of NAME in a ListPolicies answer (stdin)")
    found.add_argument("name")
    attached = sub.add_parser("attached", help="exit 0 when NAME is in a "
                              "ListAttachedRolePolicies answer (stdin), else 1")
    attached.add_argument("name")
    return parser


def _gcp_settings(args: argparse.Namespace) -> GcpSettings:
    return GcpSettings(
        project=args.project,
        accounts={f: getattr(args, f"account_{f.removeprefix('restore-')}") for f in FUNCTIONS},
        invoker=args.invoker, event_topic=args.event_topic, request_topic=args.request_topic,
        queue=args.queue, secrets=tuple(args.secret), gcs_buckets=_csv(args.gcs_buckets),
        gcs_report_buckets=_csv(args.gcs_report_buckets), bulk=args.bulk_queue == "pubsub",
        ledger=args.ledger, allow_overwrite=args.allow_overwrite, copy_acl=args.copy_acl,
        workflows_callbacks=args.workflows_callbacks,
    )


def _cam_settings(args: argparse.Namespace) -> CamSettings:
    buckets = _csv(args.cos_buckets)
    return CamSettings(
        cos_buckets=buckets, cos_regions=_csv(args.cos_regions),
        appid=derive_appid(args.appid, args.trigger_bucket, buckets), uin=args.uin,
        cos_report_buckets=_csv(args.cos_report_buckets), bulk=args.bulk,
        event_topic=args.event_topic, event_region=args.event_region,
        bulk_topic=args.bulk_topic, recheck_queue=args.recheck_queue,
        recheck_region=args.recheck_region,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "gcp-plan":
            roles, grants = gcp_plan(_gcp_settings(args))
            for role in roles:
                print("\t".join(("role", role.id, role.title, ",".join(role.permissions))))
            for grant in grants:
                print(grant.line())
        elif args.command == "cam-policy":
            settings = _cam_settings(args)
            policy = cam_policy(settings)
            for warning in warnings_for(settings):
                print(f"deploy.sh: warning: {warning}", file=sys.stderr)
            indent = None if args.compact else 2
            print(json.dumps(policy, indent=indent, separators=(",", ":") if args.compact
                             else None))
        elif args.command == "policy-id":
            found = policy_id(json.load(sys.stdin), args.name)
            if found is not None:
                print(found)
        else:
            return 0 if is_attached(json.load(sys.stdin), args.name) else 1
    except PlanError as exc:
        print(f"deploy.sh: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
