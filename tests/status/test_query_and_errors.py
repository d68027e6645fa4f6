"""Bad queries, refusals and provider failures: the same error shapes as restore outcomes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulators._http import RESET, FaultPlan
from shared.outcome import ErrorCode, ErrorInfo
from shared.status import ObjectStatus, StatusState, parse_status_query
from shared.validation import RequestValidationError, parse_request
from tests.conftest import COS_BUCKET, GCS_BUCKET, cos_request
from tests.status.conftest import cos_query, gcs_query

ROOT = Path(__file__).resolve().parents[2]


def fields_of(status: ObjectStatus) -> dict[str, str]:
    assert status.state is StatusState.UNKNOWN
    assert status.error is not None and status.error.code is ErrorCode.VALIDATION_FAILED
    assert status.error.retryable is False
    return {problem.field: problem.type for problem in status.error.fields or []}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"provider": "cos", "bucket": "Bad_Bucket"},
         {"bucket": "value_error", "region": "missing", "key": "missing"}),
        (cos_query(region="ap guangzhou", key="////"), {"region": "value_error",
                                                        "key": "value_error"}),
        (cos_query(previous_expiry="yesterday"), {"previous_expiry": "datetime_from_date_parsing"}),
        (cos_query(days=3), {"days": "extra_forbidden"}),
        (gcs_query("line\nbreak"), {"object": "value_error"}),
        ({"provider": "gcs", "bucket": "goog-bucket"}, {"bucket": "value_error",
                                                        "object": "missing"}),
        ({"bucket": GCS_BUCKET}, {"provider": "provider"}),
        ({"provider": "s3", "bucket": GCS_BUCKET, "key": "k"}, {"provider": "provider"}),
        ({"bucket": GCS_BUCKET, "object": "o", "key": "k"}, {"provider": "provider"}),
    ],
)
def test_bad_queries_list_every_failing_field(service, cos_emulator, gcs_emulator, query,
                                              expected):
    status = service.status(query)
    assert fields_of(status) == expected
    assert status.attempts == 0  # no provider call was made
    assert cos_emulator.log.entries() == [] and gcs_emulator.log.entries() == []


def test_query_errors_match_restore_request_errors_field_for_field():
    query = {"provider": "cos", "bucket": "bad", "region": "ap-guangzhou", "key": ""}
    with pytest.raises(RequestValidationError) as as_query:
        parse_status_query(query)
    with pytest.raises(RequestValidationError) as as_request:
        parse_request({**query, "days": 1})
    assert [p.model_dump() for p in as_query.value.problems] == [
        p.model_dump() for p in as_request.value.problems
    ]
    assert as_query.value.to_dict()["code"] == "validation_failed"


def test_non_object_payload_is_a_body_error(service):
    status = service.status(["not", "a", "mapping"])
    assert fields_of(status) == {"(body)": "dict_type"}


def test_errors_never_echo_the_value_sent(service):
    secret = "AKIDsecret-pasted-in-the-wrong-field"
    status = service.status(cos_query(region=secret + " !"))
    assert secret not in status.model_dump_json()


@pytest.mark.parametrize(
    ("query", "variable"),
    [(cos_query(bucket="elsewhere-1250000000"), "RESTORE_COS_ALLOWED_BUCKETS"),
     (gcs_query(bucket="elsewhere"), "RESTORE_GCS_ALLOWED_BUCKETS")],
)
def test_bucket_outside_the_allowlist_is_refused_without_a_provider_call(
    service, cos_emulator, gcs_emulator, query, variable
):
    status = service.status(query)
    assert status.state is StatusState.UNKNOWN
    assert status.error is not None
    assert status.error.code is ErrorCode.BUCKET_NOT_ALLOWED
    assert status.error.retryable is False
    assert variable in status.error.message
    assert (status.bucket, status.provider) == (query["bucket"], query["provider"])
    assert cos_emulator.log.entries() == [] and gcs_emulator.log.entries() == []


def test_error_is_the_outcome_error_shape(service):
    status = service.status(gcs_query(bucket="elsewhere"))
    assert isinstance(status.error, ErrorInfo)
    dumped = json.loads(status.model_dump_json(exclude_none=True))
    assert set(dumped["error"]) == {"code", "message", "retryable"}


# -- provider failures ---------------------------------------------------------------------------
def test_gcs_503_is_retried_and_then_answers(service, gcs_emulator):
    generation = gcs_emulator.emulator.put_object(GCS_BUCKET, "a.txt", b"a")
    gcs_emulator.faults.set(FaultPlan(script=[503], match_path="/o/a.txt"))
    status = service.status(gcs_query("a.txt"))
    assert (status.state, status.live_generation) == (StatusState.LIVE, generation)
    assert status.attempts == 2


def test_gcs_persistent_503_is_a_retryable_error_after_every_attempt(service, gcs_emulator):
    gcs_emulator.faults.set(FaultPlan(error_rate=1.0, error_status=503, match_path="/o"))
    status = service.status(gcs_query("a.txt"))
    assert status.state is StatusState.UNKNOWN
    assert status.retryable
    assert status.error.http_status == 503
    assert status.error.code is ErrorCode.PROVIDER_ERROR
    assert status.error.provider_code == "backendError"
    assert status.attempts == service.settings.max_attempts == 3


def test_gcs_403_is_not_retried(service, gcs_emulator):
    gcs_emulator.faults.set(FaultPlan(error_rate=1.0, error_status=403, match_path="/o"))
    status = service.status(gcs_query("a.txt"))
    assert status.error is not None
    assert (status.error.code, status.error.retryable) == (ErrorCode.ACCESS_DENIED, False)
    assert status.attempts == 1


def test_cos_503_is_a_retryable_error(service, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "k.bin", b"x", "ARCHIVE")
    cos_emulator.faults.set(FaultPlan(error_rate=1.0, error_status=503))
    status = service.status(cos_query("k.bin"))
    assert status.state is StatusState.UNKNOWN
    assert status.retryable and status.error.http_status == 503
    assert status.attempts == 3
    assert [e.method for e in cos_emulator.log.entries()] == ["HEAD"] * 3


def test_cos_503_then_success_is_retried(service, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "k.bin", b"x", "ARCHIVE")
    cos_emulator.faults.set(FaultPlan(script=[503]))
    status = service.status(cos_query("k.bin"))
    assert (status.state, status.attempts) == (StatusState.ARCHIVED, 2)


def test_cos_connection_reset_is_a_retryable_network_error(service, cos_emulator):
    cos_emulator.faults.set(FaultPlan(script=[RESET, RESET, RESET]))
    status = service.status(cos_query("k.bin"))
    assert status.error is not None
    assert status.error.code in (ErrorCode.NETWORK_ERROR, ErrorCode.TIMEOUT)
    assert status.retryable
    assert status.attempts == 3


def test_cos_403_is_access_denied_not_retried(service, cos_emulator):
    cos_emulator.faults.set(FaultPlan(error_rate=1.0, error_status=403))
    status = service.status(cos_query("k.bin"))
    assert status.error is not None
    assert (status.error.code, status.error.retryable) == (ErrorCode.ACCESS_DENIED, False)
    assert status.error.http_status == 403
    assert status.attempts == 1


def test_status_never_publishes_even_for_a_finished_restore(service, sink, cos_emulator):
    cos_emulator.emulator.put_object(COS_BUCKET, "k.bin", b"x", "ARCHIVE")
    service.restore(cos_request("k.bin"))
    cos_emulator.emulator.clock.advance(61)
    published = list(sink.types())
    assert service.status(cos_query("k.bin")).state is StatusState.RESTORED
    assert sink.types() == published == ["initiated"]


# -- schema ----------------------------------------------------------------------------------------
def test_exported_object_status_schema_lists_every_state():
    schema = json.loads((ROOT / "schemas" / "object-status.schema.json").read_text())
    states = schema["$defs"]["StatusState"]["enum"]
    assert states == [state.value for state in StatusState]
    assert schema["required"] == ["state"]
    query = json.loads((ROOT / "schemas" / "status-query.schema.json").read_text())
    assert {"CosStatusQuery", "GcsStatusQuery"} <= set(query["$defs"])
