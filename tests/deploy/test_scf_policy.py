"""`deploy.sh scf`'s CAM policy for the execution role: its exact actions and resources from the
settings, --print-policy, refusals, and creating/updating and attaching it through tccli (a
recording fake) or printing how to when tccli is missing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.deploy._scf import deploy, offline_python, recorded, scf_env, tccli_calls

# Tencent's CAM action names (COS API names; TDMQ CMQ API 3.0 actions) and six-segment resources:
# qcs::cos:<region>:uid/<appid>:<bucket>-<appid>/<path>, qcs::tdmq:<region>:<account>:topic/<n>.
RESTORE = ["name/cos:HeadObject", "name/cos:PostObjectRestore"]
LIST = ["name/cos:GetBucket"]
REPORTS = ["name/cos:GetBucket", "name/cos:GetObject", "name/cos:PutObject"]
PUBLISH = ["name/tdmq:PublishCmqMsg"]
SEND = ["name/tdmq:SendCmqMsg"]


def allow(actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"effect": "allow", "action": actions, "resource": resources}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    # Real runs build no dependencies here (see offline_python): they are about the policy.
    return scf_env(tmp_path, RESTORE_PYTHON=offline_python(tmp_path))


def build_dir(env: dict[str, str]) -> Path:
    return Path(env["RESTORE_SCF_BUILD_DIR"])


def test_the_default_policy_is_written_beside_the_package(env: dict[str, str]) -> None:
    """REQUIRED_SETTINGS: allowlist archive-*, trigger bucket archive-1250000000, no reports."""
    result = deploy(env, "--dry-run")
    assert json.loads((build_dir(env) / "cam-policy.json").read_text()) == {
        "version": "2.0",
        "statement": [
            allow(RESTORE, ["qcs::cos:ap-guangzhou:uid/1250000000:archive-*"]),
            allow(LIST, ["qcs::cos:ap-guangzhou:uid/1250000000:archive-*"]),
            allow(PUBLISH, ["qcs::tdmq:ap-guangzhou::topic/restore-events",
                            "qcs::tdmq:ap-guangzhou::topic/restore-requests"]),
            allow(SEND, ["qcs::tdmq:ap-guangzhou::queue/restore-rechecks"]),
        ],
    }
    assert f"CAM policy for restorefn-exec: {build_dir(env)}/cam-policy.json" in result.stdout
    # No report bucket: bulk jobs could list and restore but not write their reports.
    assert "no RESTORE_COS_REPORT_BUCKETS" in result.stderr


def test_every_setting_reaches_the_policy(env: dict[str, str]) -> None:
    env.update(
        RESTORE_SCF_REGION="ap-shanghai",
        RESTORE_SCF_COS_TRIGGER_BUCKET="logs-1250000000.cos.ap-shanghai.myqcloud.com",
        RESTORE_COS_ALLOWED_BUCKETS="logs-1250000000,cold-*,other-1300000000",
        RESTORE_COS_REGIONS="ap-shanghai,ap-beijing",
        RESTORE_COS_REPORT_BUCKETS="cold-reports-1250000000",
        RESTORE_TENCENT_UIN="100000000001", RESTORE_EVENT_TDMQ_TOPIC="evt",
        RESTORE_EVENT_TDMQ_REGION="ap-singapore", RESTORE_SCF_REQUEST_TOPIC="req",
        RESTORE_RECHECK_TDMQ_QUEUE="later",
    )
    deploy(env, "--dry-run")
    buckets = [f"qcs::cos:{region}:uid/{resource}"
               for resource in ("1250000000:logs-1250000000/*", "1250000000:cold-*",
                                "1300000000:other-1300000000/*")
               for region in ("ap-shanghai", "ap-beijing")]
    assert json.loads((build_dir(env) / "cam-policy.json").read_text())["statement"] == [
        allow(RESTORE, buckets),
        allow(LIST, buckets),
        allow(REPORTS, ["qcs::cos:ap-shanghai:uid/1250000000:cold-reports-1250000000/*",
                        "qcs::cos:ap-beijing:uid/1250000000:cold-reports-1250000000/*"]),
        # Chunks go out in the event sink's region (shared.sinks.tdmq_publisher).
        allow(PUBLISH, ["qcs::tdmq:ap-singapore:uin/100000000001:topic/evt",
                        "qcs::tdmq:ap-singapore:uin/100000000001:topic/req"]),
        allow(SEND, ["qcs::tdmq:ap-shanghai:uin/100000000001:queue/later"]),
    ]


def test_print_policy_needs_only_what_the_policy_depends_on(env: dict[str, str]) -> None:
    for name in ("RESTORE_SCF_ROLE", "RESTORE_WEBHOOK_SECRETS", "RESTORE_SCF_COS_TRIGGER_BUCKET"):
        del env[name]
    env.update(RESTORE_COS_ALLOWED_BUCKETS="archive-1250000000",
               RESTORE_COS_REPORT_BUCKETS="archive-1250000000")
    result = deploy(env, "--print-policy")
    assert json.loads(result.stdout)["statement"][:3] == [
        allow(RESTORE, ["qcs::cos:ap-guangzhou:uid/1250000000:archive-1250000000/*"]),
        allow(LIST, ["qcs::cos:ap-guangzhou:uid/1250000000:archive-1250000000/*"]),
        allow(REPORTS, ["qcs::cos:ap-guangzhou:uid/1250000000:archive-1250000000/*"]),
    ]
    assert not build_dir(env).exists()
    assert recorded(env) == [] and tccli_calls(env) == []


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"RESTORE_COS_ALLOWED_BUCKETS": "*-1250000000"}, "cannot be granted as least privilege"),
        ({"RESTORE_COS_ALLOWED_BUCKETS": "archive"}, "'archive' is not a COS bucket name"),
        ({"RESTORE_COS_REPORT_BUCKETS": "reports-1250000000"},
         "'reports-1250000000' is outside RESTORE_COS_ALLOWED_BUCKETS"),
        ({"RESTORE_COS_APPID": "x12"}, "RESTORE_COS_APPID must be the account's numeric APPID"),
    ],
)
def test_settings_no_resource_can_express_are_refused_before_building(
    env: dict[str, str], settings: dict[str, str], message: str
) -> None:
    env.update(settings)
    result = deploy(env, "--dry-run", check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert not build_dir(env).exists()


def test_a_prefix_without_an_appid_is_refused_by_print_policy(env: dict[str, str]) -> None:
    del env["RESTORE_SCF_COS_TRIGGER_BUCKET"]
    result = deploy(env, "--print-policy", check=False)
    assert result.returncode == 1
    assert "set RESTORE_COS_APPID" in result.stderr
    env["RESTORE_COS_APPID"] = "1250000000"
    assert "uid/1250000000:archive-*" in deploy(env, "--print-policy").stdout


def _document(call: list[str]) -> Any:
    return json.loads(call[call.index("--PolicyDocument") + 1])


def test_a_new_policy_is_created_and_attached(env: dict[str, str]) -> None:
    deploy(env)
    calls = tccli_calls(env)
    assert [call[:2] for call in calls] == [
        ["cam", "ListPolicies"], ["cam", "CreatePolicy"], ["cam", "ListAttachedRolePolicies"],
        ["cam", "AttachRolePolicy"]]
    assert calls[1][2:4] == ["--PolicyName", "restorefn-dev"]
    assert _document(calls[1]) == json.loads((build_dir(env) / "cam-policy.json").read_text())
    assert calls[3] == ["cam", "AttachRolePolicy", "--PolicyName", "restorefn-dev",
                        "--AttachRoleName", "restorefn-exec"]
    assert [call["args"] for call in recorded(env)] == [["deploy"]]  # then the function


def test_an_existing_policy_is_updated_in_place_and_not_attached_twice(
    env: dict[str, str]
) -> None:
    env.update(FAKE_TCCLI_POLICIES="restorefn-dev-old:7 restorefn-dev:42",
               FAKE_TCCLI_ATTACHED="restorefn-exec:restorefn-dev",
               RESTORE_COS_REPORT_BUCKETS="archive-reports-1250000000")
    deploy(env)
    calls = tccli_calls(env)
    assert [call[1] for call in calls] == [
        "ListPolicies", "UpdatePolicy", "ListAttachedRolePolicies"]
    assert calls[1][2:4] == ["--PolicyId", "42"]  # the exact name, not the other match
    assert _document(calls[1])["statement"][2] == allow(
        REPORTS, ["qcs::cos:ap-guangzhou:uid/1250000000:archive-reports-1250000000/*"])


def test_policy_name_setting_and_a_second_run(env: dict[str, str]) -> None:
    env["RESTORE_SCF_POLICY_NAME"] = "restorefn-role-policy"
    deploy(env)
    deploy(env)
    calls = tccli_calls(env)
    assert [call[1] for call in calls] == [
        "ListPolicies", "CreatePolicy", "ListAttachedRolePolicies", "AttachRolePolicy",
        "ListPolicies", "UpdatePolicy", "ListAttachedRolePolicies"]
    assert calls[5][2:4] == ["--PolicyId", "1000"]


def test_without_tccli_the_commands_are_printed_and_the_deploy_goes_on(
    env: dict[str, str]
) -> None:
    env["TCCLI"] = "tccli-not-installed"
    result = deploy(env)
    assert "tccli-not-installed not found: the policy was not applied" in result.stderr
    assert "tccli-not-installed cam CreatePolicy --PolicyName restorefn-dev" in result.stderr
    assert ("tccli-not-installed cam AttachRolePolicy --PolicyName restorefn-dev "
            "--AttachRoleName restorefn-exec") in result.stderr
    assert tccli_calls(env) == []
    assert [call["args"] for call in recorded(env)] == [["deploy"]]


def test_a_failing_tccli_stops_before_the_function_is_deployed(env: dict[str, str]) -> None:
    env["FAKE_TCCLI_EXIT"] = "1"
    result = deploy(env, check=False)
    assert result.returncode != 0
    assert len(tccli_calls(env)) == 1
    assert recorded(env) == []
