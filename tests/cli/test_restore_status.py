"""restore and status against the emulators, exit codes, --json, validation and configuration."""

from __future__ import annotations

import io
import json

import pytest

from emulators._http import FaultPlan
from shared.cli import (
    EXIT_BAD_INPUT,
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_RETRYABLE,
)
from tests.conftest import COS_BUCKET, COS_REGION, GCS_BUCKET

pytestmark = pytest.mark.usefixtures("cos_credentials")


def cos_flags(key: str, *extra: str, days: bool = True) -> list[str]:
    """A COS object's flags; restores need --days (1 unless ``extra`` says), status does not."""
    default_days = ["--days", "1"] if days and "--days" not in extra else []
    return ["--provider", "cos", "--bucket", COS_BUCKET, "--region", COS_REGION, "--key", key,
            *default_days, *extra]


def gcs_flags(name: str, *extra: str) -> list[str]:
    return ["--provider", "gcs", "--bucket", GCS_BUCKET, "--object", name, *extra]


def soft_delete(gcs_emulator, name: str, data: bytes = b"payload") -> int:
    generation = gcs_emulator.emulator.put_object(GCS_BUCKET, name, data)
    gcs_emulator.emulator.delete_object(GCS_BUCKET, name)
    return int(generation)


# -- restore -----------------------------------------------------------------------------------
def test_cos_restore_initiated_exits_0_with_one_json_document(cli, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "logs/a.gz", b"x", "ARCHIVE")
    run = cli("--json", "--cos-endpoint", cos_emulator.url, "restore",
              *cos_flags("logs/a.gz", "--days", "2", "--tier", "Expedited",
                         "--request-id", "cli-cos-1", "--context", '{"ticket": "OPS-1"}'))
    assert run.code == EXIT_OK
    outcome = run.doc()
    assert outcome["status"] == "initiated"
    assert outcome["request_id"] == "cli-cos-1"
    assert outcome["context"] == {"ticket": "OPS-1"}
    assert (outcome["tier"], outcome["days"]) == ("Expedited", 2)
    assert cos_emulator.emulator.restore_state(COS_BUCKET, "logs/a.gz")["status"] == "ongoing"
    # The default log sink writes the event to stderr, never into the JSON on stdout.
    event = json.loads(run.err.strip().splitlines()[-1])
    assert event["type"] == "restorefn.object.restore.v1.initiated"
    assert event["data"]["request_id"] == "cli-cos-1"


def test_global_flags_may_follow_the_subcommand(cli, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "after.bin", b"x", "ARCHIVE")
    run = cli("restore", *cos_flags("after.bin"), "--json", "--cos-endpoint", cos_emulator.url)
    assert run.code == 0
    assert run.doc()["status"] == "initiated"


def test_gcs_restore_completed_human_output(cli, gcs_emulator):
    source = soft_delete(gcs_emulator, "reports/q3.csv")
    run = cli("--gcs-endpoint", gcs_emulator.url, "restore", *gcs_flags("reports/q3.csv"))
    assert run.code == 0
    head, *details = run.out.splitlines()
    assert head.startswith(f"completed  gcs {GCS_BUCKET}/reports/q3.csv  request_id=")
    assert f"  generation: {source}" in details
    live = [g for g in gcs_emulator.emulator.generations(GCS_BUCKET, "reports/q3.csv")
            if g["state"] == "live"]
    assert len(live) == 1
    assert f"  restored_generation: {live[0]['generation']}" in details


def test_gcs_restore_of_an_explicit_generation_and_already_restored(cli, gcs_emulator):
    source = soft_delete(gcs_emulator, "g.txt")
    args = ["--json", "--gcs-endpoint", gcs_emulator.url, "restore",
            *gcs_flags("g.txt", "--generation", str(source))]
    first = cli(*args)
    second = cli(*args)
    assert (first.code, first.doc()["status"], first.doc()["generation"]) == (
        0, "completed", source)
    assert (second.code, second.doc()["status"]) == (0, "already_restored")


def test_restore_from_a_batch_file_exits_with_the_worst_item(cli, cos_emulator, tmp_path):
    cos_emulator.emulator.put_object(COS_BUCKET, "b1.bin", b"x", "ARCHIVE")
    batch = {"requests": [
        {"provider": "cos", "bucket": COS_BUCKET, "region": COS_REGION, "key": "b1.bin",
         "days": 1},
        {"provider": "cos", "bucket": COS_BUCKET, "region": COS_REGION, "days": 0},
    ]}
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(batch))
    run = cli("--json", "--cos-endpoint", cos_emulator.url, "restore", "--file", str(path))
    first, second = run.docs()
    assert first["status"] == "initiated"
    assert second["status"] == "rejected"
    assert {f["field"] for f in second["error"]["fields"]} == {"days", "key"}
    assert run.code == EXIT_BAD_INPUT  # bad input outranks the accepted item


def test_restore_reads_stdin(cli, cos_emulator, monkeypatch):
    cos_emulator.emulator.put_object(COS_BUCKET, "stdin.bin", b"x", "ARCHIVE")
    request = {"Bucket": COS_BUCKET, "Region": COS_REGION, "Key": "stdin.bin",
               "RestoreRequest": {"Days": 1, "CASJobParameters": {"Tier": "Bulk"}}}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(request)))
    run = cli("--json", "--cos-endpoint", cos_emulator.url, "restore", "--file", "-")
    assert run.code == 0
    assert (run.doc()["status"], run.doc()["tier"]) == ("initiated", "Bulk")


# -- exit codes ----------------------------------------------------------------------------------
def test_validation_rejection_exits_2_with_the_field_list(cli, cos_emulator):
    run = cli("--cos-endpoint", cos_emulator.url, "restore", "--provider", "cos",
              "--bucket", COS_BUCKET, "--region", COS_REGION, "--days", "999")
    assert run.code == EXIT_BAD_INPUT
    assert "error: validation_failed: 2 fields failed validation" in run.out
    assert "    - days: Input should be less than or equal to 365" in run.out
    assert "    - key: Field required" in run.out
    assert cos_emulator.log.entries() == []  # nothing reached the provider


def test_validation_rejection_as_json(cli, gcs_emulator):
    run = cli("--json", "--gcs-endpoint", gcs_emulator.url, "restore",
              *gcs_flags("a\nb", "--days", "3"))
    assert run.code == 2
    error = run.doc()["error"]
    assert error["code"] == "validation_failed"
    assert {f["field"] for f in error["fields"]} == {"object", "days"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["restore", "--provider", "cos", "--days", "many"], "invalid int value"),
        (["restore", "--provider", "s3", "--bucket", "b"], "invalid choice"),
        (["restore", "--context", "{not json", "--bucket", "b"], "not JSON"),
        (["wait", "--bucket", "b", "--interval", "0"], "must be greater than 0"),
        (["frobnicate"], "invalid choice"),
        (["restore"], "name an object"),
        (["restore", "--file", "x.json", "--bucket", "b"], "cannot be combined"),
        (["restore", "--file", "does-not-exist.json"], "does-not-exist.json"),
    ],
)
def test_usage_errors_exit_2(cli, argv, message):
    run = cli(*argv)
    assert run.code == EXIT_BAD_INPUT
    assert message in run.err
    assert run.out == ""


def test_file_that_is_not_json_exits_2(cli, tmp_path):
    path = tmp_path / "r.json"
    path.write_text("{oops")
    run = cli("restore", "--file", str(path))
    assert run.code == 2
    assert "not JSON" in run.err


def test_not_archived_object_exits_1(cli, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "hot.bin", b"x", "STANDARD")
    run = cli("--json", "--cos-endpoint", cos_emulator.url, "restore", *cos_flags("hot.bin"))
    assert run.code == EXIT_FAILED
    assert run.doc()["status"] == "rejected"
    assert run.doc()["error"]["code"] == "not_archived"


def test_missing_object_exits_1(cli, cos_emulator):
    cos_emulator.emulator.create_bucket(COS_BUCKET)
    run = cli("--cos-endpoint", cos_emulator.url, "restore", *cos_flags("nothing.bin"))
    assert run.code == 1
    assert run.out.startswith("failed  cos ")
    assert "error: not_found" in run.out


def test_provider_503s_exit_5(cli, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "busy.bin", b"x", "ARCHIVE")
    cos_emulator.faults.set(FaultPlan(error_rate=1.0))
    run = cli("--json", "--cos-endpoint", cos_emulator.url, "restore", *cos_flags("busy.bin"))
    assert run.code == EXIT_RETRYABLE
    outcome = run.doc()
    assert outcome["status"] == "failed"
    assert outcome["error"]["retryable"] is True
    assert outcome["attempts"] == 3  # RESTORE_MAX_ATTEMPTS default: the core retried first
    assert {entry.fault for entry in cos_emulator.log.entries()} != {None}


def test_gcs_503s_exit_5(cli, gcs_emulator):
    soft_delete(gcs_emulator, "busy.txt")
    gcs_emulator.faults.set(FaultPlan(error_rate=1.0))
    run = cli("--gcs-endpoint", gcs_emulator.url, "restore", *gcs_flags("busy.txt"))
    assert run.code == 5
    assert "retryable" in run.out


def test_missing_cos_credentials_exit_4(cli, cos_emulator, monkeypatch):
    monkeypatch.delenv("COS_SECRET_ID")
    monkeypatch.delenv("COS_SECRET_KEY")
    cos_emulator.emulator.put_object(COS_BUCKET, "k.bin", b"x", "ARCHIVE")
    run = cli("--cos-endpoint", cos_emulator.url, "restore", *cos_flags("k.bin"))
    assert run.code == EXIT_CONFIG
    assert "COS_SECRET_ID" in run.err
    assert cos_emulator.log.entries() == []


def test_scf_style_credentials_are_enough(cli, cos_emulator, monkeypatch):
    for name in ("COS_SECRET_ID", "COS_SECRET_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("TENCENTCLOUD_SECRETID", "AKIDEXAMPLEEMULATOR")
    monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", "emulator-secret-key")
    cos_emulator.emulator.put_object(COS_BUCKET, "scf.bin", b"x", "ARCHIVE")
    run = cli("--cos-endpoint", cos_emulator.url, "restore", *cos_flags("scf.bin"))
    assert run.code == 0
    assert run.out.startswith("initiated")


def test_missing_google_credentials_exit_4(cli):
    # No endpoint: the real GCS client looks for Application Default Credentials, which the
    # fixture pointed at a file that does not exist.
    run = cli("restore", *gcs_flags("x.txt"))
    assert run.code == EXIT_CONFIG
    assert "Application Default Credentials" in run.err


def test_invalid_settings_exit_4(cli, monkeypatch):
    monkeypatch.setenv("RESTORE_MAX_ATTEMPTS", "lots")
    run = cli("status", *cos_flags("k", days=False))
    assert run.code == 4
    assert "max_attempts" in run.err
    assert "lots" not in run.err  # values are never echoed (they may be secrets)


def test_file_sink_without_a_path_exits_4(cli, cos_emulator, monkeypatch):
    monkeypatch.setenv("RESTORE_EVENT_SINK", "file")
    run = cli("--cos-endpoint", cos_emulator.url, "restore", *cos_flags("k"))
    assert run.code == 4
    assert "RESTORE_EVENT_FILE" in run.err


def test_configured_allowlist_is_honoured(cli, cos_emulator, monkeypatch):
    cos_emulator.emulator.put_object(COS_BUCKET, "k.bin", b"x", "ARCHIVE")
    monkeypatch.setenv("RESTORE_COS_ALLOWED_BUCKETS", "other-*")
    run = cli("--json", "--cos-endpoint", cos_emulator.url, "restore", *cos_flags("k.bin"))
    assert run.code == EXIT_CONFIG
    assert run.doc()["error"]["code"] == "bucket_not_allowed"
    monkeypatch.setenv("RESTORE_COS_ALLOWED_BUCKETS", "archive-*")
    assert cli("--cos-endpoint", cos_emulator.url, "restore", *cos_flags("k.bin")).code == 0


# -- status --------------------------------------------------------------------------------------
def test_cos_status_archived_then_restoring(cli, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "s.bin", b"abc", "ARCHIVE")
    base = ["--json", "--cos-endpoint", cos_emulator.url]
    before = cli(*base, "status", *cos_flags("s.bin", days=False))
    assert before.code == 0
    assert (before.doc()["state"], before.doc()["storage_class"], before.doc()["size"]) == (
        "archived", "ARCHIVE", 3)
    assert cli(*base, "restore", *cos_flags("s.bin", "--tier", "Bulk")).code == 0
    after = cli(*base, "status", *cos_flags("s.bin", days=False))
    assert (after.code, after.doc()["state"], after.doc()["tier"]) == (0, "restoring", "Bulk")


def test_cos_status_human_output_and_not_found(cli, cos_emulator):
    cos_emulator.emulator.create_bucket(COS_BUCKET)
    run = cli("--cos-endpoint", cos_emulator.url, "status", *cos_flags("none.bin", days=False))
    assert run.code == 0
    assert run.out.splitlines()[0] == f"not_found  cos {COS_BUCKET}/none.bin"
    assert f"  region: {COS_REGION}" in run.out


def test_gcs_status_soft_deleted_lists_generations(cli, gcs_emulator):
    generation = soft_delete(gcs_emulator, "sd.txt", b"12345")
    run = cli("--gcs-endpoint", gcs_emulator.url, "status", *gcs_flags("sd.txt"))
    assert run.code == 0
    assert run.out.startswith(f"soft_deleted  gcs {GCS_BUCKET}/sd.txt")
    assert f"  soft-deleted generation {generation} (" in run.out
    assert "5 bytes" in run.out


def test_gcs_status_live_as_json(cli, gcs_emulator):
    generation = gcs_emulator.emulator.put_object(GCS_BUCKET, "live.txt", b"x")
    run = cli("--json", "--gcs-endpoint", gcs_emulator.url, "status", *gcs_flags("live.txt"))
    assert (run.code, run.doc()["state"], run.doc()["live_generation"]) == (0, "live", generation)


def test_status_validation_and_faults(cli, cos_emulator):
    bad = cli("--json", "--cos-endpoint", cos_emulator.url, "status", "--provider", "cos",
              "--bucket", "Not_A_Bucket", "--key", "k")
    assert bad.code == 2
    assert {f["field"] for f in bad.doc()["error"]["fields"]} == {"bucket", "region"}
    cos_emulator.emulator.put_object(COS_BUCKET, "f.bin", b"x", "ARCHIVE")
    cos_emulator.faults.set(FaultPlan(error_rate=1.0))
    busy = cli("--json", "--cos-endpoint", cos_emulator.url, "status",
               *cos_flags("f.bin", days=False))
    assert busy.code == 5
    assert busy.doc()["state"] == "unknown"


def test_status_refuses_restore_only_flags(cli):
    run = cli("status", *cos_flags("k", "--days", "3"))
    assert run.code == 2
    assert "unrecognized arguments: --days" in run.err


def test_help_documents_exit_codes(cli):
    run = cli("--help")
    assert run.code == 0
    assert "exit codes" in run.out
    for line in ("  3    wait timeout", "  4    configuration error", "  5    retryable"):
        assert line in run.out
    assert "exit codes" in cli("wait", "--help").out
