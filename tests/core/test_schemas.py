"""Request validation: provider spellings accepted as they are, every failing field reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.restore_requests import CosRestoreRequest, GcsRestoreRequest
from shared.validation import RequestValidationError, parse_request, split_batch

EVENTS = Path(__file__).parent.parent / "events"


def load(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def problems(payload: object) -> dict[str, str]:
    with pytest.raises(RequestValidationError) as caught:
        parse_request(payload)
    body = caught.value.to_dict()
    assert body["code"] == "validation_failed"
    return {p["field"]: p["reason"] for p in body["fields"]}


def test_cos_seed_document_payload_validates_as_is():
    request = parse_request(load("cos_seed_restore.json"))
    assert isinstance(request, CosRestoreRequest)
    assert (request.bucket, request.region, request.key) == (
        "examplebucket-1250000000", "COS_REGION", "1.jpg",
    )
    assert (request.days, request.tier) == (1, "Expedited")


def test_gcs_api_spelling_validates_with_string_int64s():
    request = parse_request(load("gcs_seed_restore.json"))
    assert isinstance(request, GcsRestoreRequest)
    assert request.generation == 1700000000123456
    assert request.copy_source_acl is True
    assert request.effective_if_generation_match() == 0


def test_flat_and_nested_cos_spellings_agree():
    flat = parse_request(
        {"provider": "cos", "bucket": "b-1250000000", "region": "ap-guangzhou", "key": "k",
         "days": 7, "tier": "Bulk"}
    )
    nested = parse_request(
        {"Bucket": "b-1250000000", "Region": "ap-guangzhou", "Key": "k", "Days": 7,
         "CASJobParameters": {"Tier": "Bulk"}}
    )
    assert flat.model_dump(exclude={"request_id"}) == nested.model_dump(exclude={"request_id"})


def test_tier_defaults_to_standard_and_request_id_is_generated():
    payload = {"Bucket": "b-1250000000", "Region": "ap-beijing", "Key": "k", "Days": 1}
    first, second = parse_request(payload), parse_request(payload)
    assert first.tier == "Standard"
    assert first.request_id and first.request_id != second.request_id


def test_every_failing_field_is_listed_with_its_reason():
    found = problems(
        {"provider": "cos", "bucket": "NoAppId", "region": "ap guangzhou", "days": 400,
         "tier": "Fast", "colour": "blue"}
    )
    assert set(found) == {"bucket", "region", "key", "days", "tier", "colour"}
    assert "APPID" in found["bucket"]
    assert "365" in found["days"]
    assert found["key"] == "Field required"
    assert "not permitted" in found["colour"]


def test_nested_alias_errors_point_at_the_nested_location():
    found = problems(
        {"Bucket": "b-1250000000", "Region": "r", "Key": "k", "RestoreRequest": {"Days": 0}}
    )
    assert list(found) == ["RestoreRequest.Days"]


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "1-1024 bytes"),
        ("a" * 1025, "1-1024 bytes"),
        ("é" * 513, "1-1024 bytes"),  # 1026 bytes although 513 characters
        ("line\nbreak", "line feed"),
        ("..", "'.' or '..'"),
    ],
)
def test_gcs_object_name_rules(name: str, fragment: str):
    found = problems({"provider": "gcs", "bucket": "my-bucket", "object": name})
    assert fragment in found["object"]


def test_gcs_object_name_of_exactly_1024_bytes_is_accepted():
    name = "é" * 512
    assert len(name.encode()) == 1024
    assert parse_request({"provider": "gcs", "bucket": "my-bucket", "object": name}).object == name


@pytest.mark.parametrize(
    "bucket", ["ab", "Upper", "-start", "end-", "goog-bucket", "my-google-bucket", "192.168.1.1",
               "a" * 64]
)
def test_gcs_bucket_naming_rules(bucket: str):
    assert "bucket" in problems({"provider": "gcs", "bucket": bucket, "object": "o"})


def test_preconditions_on_a_live_object_need_allow_overwrite():
    found = problems(
        {"provider": "gcs", "bucket": "my-bucket", "object": "o", "ifGenerationMatch": 17}
    )
    assert "allow_overwrite" in found
    request = parse_request(
        {"provider": "gcs", "bucket": "my-bucket", "object": "o", "ifGenerationMatch": 17,
         "allow_overwrite": True}
    )
    assert request.effective_if_generation_match() == 17


def test_allow_overwrite_drops_the_default_if_generation_match_zero():
    request = parse_request(
        {"provider": "gcs", "bucket": "my-bucket", "object": "o", "allow_overwrite": True}
    )
    assert request.effective_if_generation_match() is None


def test_unknown_provider_and_ambiguous_payloads_are_rejected_on_provider():
    assert "provider" in problems({"provider": "s3", "bucket": "b"})
    assert "provider" in problems({"bucket": "b"})


def test_non_object_bodies_are_rejected():
    assert problems(["not", "an", "object"]) == {"(body)": "must be a JSON object"}


def test_context_is_kept_untouched_and_bounded():
    context = {"workflow": "wf-1", "nested": {"list": [1, "two", None]}}
    request = parse_request(
        {"provider": "gcs", "bucket": "my-bucket", "object": "o", "context": context}
    )
    assert request.context == context
    assert "context" in problems(
        {"provider": "gcs", "bucket": "my-bucket", "object": "o", "context": {"x": "y" * 9000}}
    )


def test_validation_errors_never_echo_the_input_value():
    secret = "AKIDsuper-secret-value"
    with pytest.raises(RequestValidationError) as caught:
        parse_request({"provider": "cos", "bucket": secret, "region": "r", "key": "k", "days": 1})
    assert secret not in json.dumps(caught.value.to_dict())


def test_batches_split_into_unvalidated_items_and_are_bounded():
    items = split_batch({"requests": [{"a": 1}, {"b": 2}]})
    assert items == [{"a": 1}, {"b": 2}]
    assert split_batch({"provider": "gcs"}) is None
    with pytest.raises(RequestValidationError):
        split_batch({"requests": [{}] * 101})
    with pytest.raises(RequestValidationError):
        split_batch({"requests": []})
