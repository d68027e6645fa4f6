"""deploy/permissions.py on its own: the role definitions, scopes, per-function needs, the CLI's
answers parsing, and the README's Permissions tables against it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deploy import permissions as p

ROOT = Path(__file__).resolve().parents[2]
EVERYTHING = p.GcpSettings(
    project="p", accounts={f: f"{f}@p.iam" for f in p.FUNCTIONS}, invoker="inv@p.iam",
    event_topic="evt", request_topic="req", queue="q", secrets=("wh", "cos"),
    gcs_buckets=("data-*", "logs"), gcs_report_buckets=("logs",), bulk=True,
    ledger="gs://ledger/x", allow_overwrite=True, copy_acl=True, workflows_callbacks=True,
)


def test_custom_roles_are_valid_and_distinct() -> None:
    # IAM custom role ids: letters, digits, "_" and "."; 3-64 characters; titles <= 100.
    assert len({role.id for role in p.CUSTOM_ROLES}) == len(p.CUSTOM_ROLES)
    for role in p.CUSTOM_ROLES:
        assert re.fullmatch(r"[A-Za-z0-9_.]{3,64}", role.id), role.id
        assert 0 < len(role.title) <= 100
        assert list(role.permissions) == sorted(set(role.permissions)), role.id
        assert all(re.fullmatch(r"[a-z]+\.[a-zA-Z]+\.[a-zA-Z]+", perm) for perm in role.permissions)


@pytest.mark.parametrize(
    ("pattern", "scope"),
    [("logs", p.Scope("bucket", "logs")), ("restore-*", p.Scope("bucket-prefix", "restore-")),
     ("a.b-c_1", p.Scope("bucket", "a.b-c_1"))],
)
def test_patterns_a_grant_can_express(pattern: str, scope: p.Scope) -> None:
    assert p.bucket_scopes([pattern], "X") == [scope]


@pytest.mark.parametrize("pattern", ["*", "*-logs", "lo?s", "[ab]-x", "a*b*", "a*b"])
def test_patterns_no_grant_can_express(pattern: str) -> None:
    with pytest.raises(p.PlanError, match="cannot be granted as least privilege"):
        p.bucket_scopes([pattern], "X")


def test_report_buckets_must_be_inside_the_allowlist() -> None:
    p.check_within(["logs", "data-reports", "data-x*"], ["logs", "data-*"], "R", "A")
    for outside in ("other", "dat*", "da*"):
        with pytest.raises(p.PlanError, match="outside A"):
            p.check_within([outside], ["logs", "data-*"], "R", "A")


def test_one_shared_account_gets_the_union_once_and_only_used_roles_are_created() -> None:
    shared = p.GcpSettings(**{**EVERYTHING.__dict__,
                              "accounts": dict.fromkeys(p.FUNCTIONS, "one@p.iam")})
    roles, grants = p.gcp_plan(shared)
    assert len(grants) == len(set(grants))
    separate = {(g.kind, g.target, g.role) for g in p.gcp_plan(EVERYTHING)[1]}
    assert {(g.kind, g.target, g.role) for g in grants} == separate
    assert [r.id for r in roles] == [r.id for r in p.CUSTOM_ROLES]  # every feature on
    minimal, _ = p.gcp_plan(p.GcpSettings(**{**EVERYTHING.__dict__, "gcs_buckets": (),
                                             "gcs_report_buckets": (), "bulk": False,
                                             "ledger": "memory", "workflows_callbacks": False}))
    assert minimal == []


def test_recheck_never_restores_or_lists() -> None:
    needs = p.function_needs("restore-recheck", EVERYTHING)
    roles = {role for _, _, role in needs}
    assert not roles & {p.GCS_RESTORE, p.GCS_READ, p.GCS_OVERWRITE, p.GCS_ACL, p.GCS_BULK,
                        p.GCS_REPORTS}
    assert ("topic", "req", p.PUBSUB_PUBLISHER) not in needs  # it publishes no chunks


def test_cli_answers_are_read_by_exact_name() -> None:
    listed = {"Response": {"List": [{"PolicyId": 7, "PolicyName": "restorefn-dev-old"},
                                    {"PolicyId": 42, "PolicyName": "restorefn-dev"}],
                           "TotalNum": 2}}
    assert p.policy_id(listed, "restorefn-dev") == 42
    assert p.policy_id(listed, "restorefn") is None
    assert p.policy_id({"List": None}, "x") is None
    attached = {"List": [{"PolicyName": "QcloudCOSFullAccess"}, {"PolicyName": "restorefn-dev"}]}
    assert p.is_attached(attached, "restorefn-dev")
    assert not p.is_attached(attached, "restorefn")


def test_tdmq_actions_are_the_sdk_calls_the_code_makes() -> None:
    from tencentcloud.tdmq.v20200217.tdmq_client import TdmqClient

    sources = {"PublishCmqMsg": ROOT / "shared" / "sinks" / "tdmq.py",
               "SendCmqMsg": ROOT / "shared" / "schedulers" / "tdmq.py"}
    for action in (p.TDMQ_PUBLISH, p.TDMQ_SEND):
        name = action.removeprefix("name/tdmq:")
        assert callable(getattr(TdmqClient, name))
        assert f"models.{name}Request()" in sources[name].read_text()


# -- the README's tables ----------------------------------------------------------------------
def section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Permissions\n")
    return text[start:text.index("\n## ", start + 1)]


def rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]


def permissions_in(cell: str) -> set[str]:
    """Backticked permissions, ``.delete`` after ``storage.objects.create`` meaning
    ``storage.objects.delete``."""
    found, prefix = set(), ""
    for token in re.findall(r"`([^`]+)`", cell):
        if re.fullmatch(r"[a-z]+\.[a-zA-Z]+\.[a-zA-Z]+", token):
            found.add(token)
            prefix = token.rsplit(".", 1)[0]
        elif re.fullmatch(r"\.[a-zA-Z]+", token) and prefix:
            found.add(prefix + token)
    return found


def test_the_google_table_lists_each_role_with_exactly_its_permissions_and_functions() -> None:
    google = section().split("**Tencent Cloud.**")[0]
    names = {"http": "restore-http", "pubsub": "restore-pubsub", "recheck": "restore-recheck"}
    functions_per_role: dict[str, set[str]] = {}
    for row in rows(google)[1:]:
        function, permission = row.split(" | ")[:2]
        function = function.removeprefix("| ")
        ids = re.findall(r"`(restorefn[A-Za-z]+)`", permission)
        if not ids:
            continue
        [role_id] = ids
        role = next(r for r in p.CUSTOM_ROLES if r.id == role_id)
        assert permissions_in(permission) == set(role.permissions), row
        owners = set(p.FUNCTIONS) if function == "all three" else {
            names[f] for f in function.split(", ")}
        functions_per_role.setdefault(role_id, set()).update(owners)
    expected: dict[str, set[str]] = {}
    for function in p.FUNCTIONS:
        for _, _, role in p.function_needs(function, EVERYTHING):
            if isinstance(role, p.Role):
                expected.setdefault(role.id, set()).add(function)
    assert functions_per_role == expected
    for predefined in (p.PUBSUB_PUBLISHER, p.TASKS_ENQUEUER, p.SERVICE_ACCOUNT_USER,
                       p.SECRET_ACCESSOR):
        assert f"`{predefined}`" in google


def test_the_tencent_table_lists_exactly_the_policys_actions() -> None:
    tencent = section().split("**Tencent Cloud.**")[1]
    listed = set(re.findall(r"`(name/[a-z]+:[A-Za-z]+)`", tencent))
    granted = {*p.COS_RESTORE_ACTIONS, *p.COS_LIST_ACTIONS, *p.COS_REPORT_ACTIONS,
               p.TDMQ_PUBLISH, p.TDMQ_SEND}
    assert listed == granted
    table = rows(tencent)[1:]
    assert {a for row in table for a in re.findall(r"`(name/cos:[A-Za-z]+)`", row)
            if "RESTORE_COS_REPORT_BUCKETS" in row} == set(p.COS_REPORT_ACTIONS)
