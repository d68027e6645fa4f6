"""Fuzzing the webhook on both platforms: Google's ``restore_http`` (functions-framework) and
the SCF handler's API Gateway path, with hostile bodies, headers and signatures.

Most examples carry a valid HMAC signature over whatever body they send: the property is about
what happens to the body, and an unsigned body stops at 401 before anything interesting.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from shared import auth
from tests.gcp.conftest import WEBHOOK_SECRET, golden
from tests.hostile.conftest import count_case, fuzz_settings
from tests.hostile.contract import check_event, check_webhook_answer
from tests.hostile.strategies import (
    CONTENT_TYPES,
    header_junk,
    json_body,
    json_values,
    mutated,
    request_payloads,
    signature_garbage,
    text_values,
)
from tests.tencent.conftest import SECRET as SCF_SECRET

SECRET = SecretStr(WEBHOOK_SECRET)
TRANSPORT_REFUSALS = (400, 401, 405, 413, 415)
PATHS = ["/", "/status", "/restore", "/v1/status/", "/status/x", "/%2e%2e/status", "/\u00e9",
         "/robots.txt", "/favicon.ico"]  # the last two: functions-framework's own 404 routes

bodies = json_body(request_payloads(golden))


def _is_url_text(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True
# Mostly valid: hypothesis spreads one_of's branches evenly over distinct values, so weight
# through a sampled choice.
signing = st.sampled_from(["valid"] * 8 + ["garbage"]).flatmap(
    lambda how: st.just(how) if how == "valid" else signature_garbage())


def _headers(body: bytes, content_type: str, how: Any, junk: dict[str, str],
             secret: SecretStr) -> dict[str, str]:
    headers = {**junk, "Content-Type": content_type}
    headers.update(auth.sign(secret, body) if how == "valid" else how)
    return headers


def _no_event_for_a_transport_refusal(status: int, events: list[dict[str, Any]]) -> None:
    for event in events:
        check_event(event)
    if status in TRANSPORT_REFUSALS:
        assert events == [], "a request refused before parsing published an event"


@fuzz_settings(max_examples=160)
@given(body=bodies, content_type=st.sampled_from(CONTENT_TYPES), how=signing,
       junk=header_junk(), path=st.sampled_from(PATHS))
def test_restore_http_answers_every_post_in_the_structured_shape(
    gcp, event_file, body, content_type, how, junk, path
):
    count_case("webhook_post")
    event_file.new()
    response = gcp.http.post(path, data=body,
                             headers=_headers(body, content_type, how, junk, SECRET))
    check_webhook_answer(response.status_code, response.headers.get("Content-Type"),
                         response.data)
    _no_event_for_a_transport_refusal(response.status_code, event_file.new())


# A URL carries bytes: no lone surrogates in a query a client can send.
url_text = st.text(st.characters(codec="utf-8"), max_size=30)
queries = st.dictionaries(
    st.one_of(st.sampled_from(["provider", "bucket", "Bucket", "region", "key", "object", "name",
                               "job_id", "report_bucket", "version_id", "previous_expiry"]),
              url_text),
    st.one_of(url_text, text_values().filter(_is_url_text),
              st.sampled_from(["cos", "gcs", "archive-1250000000", "restore-demo",
                               "ap-guangzhou"])),
    max_size=6,
)


@fuzz_settings(max_examples=80)
@given(query=queries, how=signing, path=st.sampled_from(PATHS), junk=header_junk())
def test_status_route_answers_every_query_in_the_structured_shape(
    gcp, event_file, query, how, path, junk
):
    count_case("webhook_status_get")
    event_file.new()
    headers = {**junk, **(auth.sign_query(SECRET, query) if how == "valid" else how)}
    response = gcp.http.get(path, query_string=query, headers=headers)
    check_webhook_answer(response.status_code, response.headers.get("Content-Type"),
                         response.data)
    assert event_file.new() == [], "the status route published an event"


hostile_queries = st.dictionaries(text_values(), st.one_of(text_values(), json_values(3)),
                                  max_size=4)


# -- SCF API Gateway -------------------------------------------------------------------------
APIGW_POST = golden("scf_apigw_post.json")
APIGW_GET = golden("scf_apigw_get.json")
ENVELOPE_NAMES = ("httpMethod", "path", "headers", "body", "isBase64Encoded", "queryString",
                  "queryStringParameters", "requestContext")


@st.composite
def apigw_events(draw: st.DrawFn) -> dict[str, Any]:
    """The golden API Gateway event carrying a hostile body (plain or base64), signed over the
    bytes the function will see, then with the envelope itself mutated now and then."""
    event = copy.deepcopy(draw(st.sampled_from([APIGW_POST, APIGW_POST, APIGW_GET])))
    body = draw(bodies)
    encoded = draw(st.booleans()) or not _is_utf8(body)
    if event["httpMethod"] == "POST":
        event["body"] = base64.b64encode(body).decode() if encoded else body.decode()
        event["isBase64Encoded"] = encoded
        event["headers"]["content-type"] = draw(st.sampled_from(CONTENT_TYPES))
    else:
        # The gateway hands over a JSON object: its strings may hold what no URL can (lone
        # surrogates); such a query cannot be signed, so it goes with garbage headers.
        hostile = draw(st.booleans())
        event["queryString"] = draw(hostile_queries if hostile else queries)
        body = b""
    how = draw(signing)
    if event["httpMethod"] == "POST":
        signed = auth.sign(SCF_SECRET, body) if how == "valid" else how
    elif hostile:
        signed = how if how != "valid" else {"X-Restore-Timestamp": "1", "X-Restore-Signature": ""}
    else:
        signed = auth.sign_query(SCF_SECRET, event["queryString"]) if how == "valid" else how
    event["headers"].update({name.lower(): value for name, value in signed.items()})
    event["headers"].update({k.lower(): v for k, v in draw(header_junk()).items()})
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        event = draw(mutated(event, max_edits=2, extra_keys=ENVELOPE_NAMES))
    return event


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


@fuzz_settings(max_examples=160)
@given(event=apigw_events(), context=st.one_of(st.none(), json_values(4)))
def test_scf_api_gateway_answers_every_event_as_an_integration_response(
    scf, event_file, event, context
):
    count_case("scf_api_gateway")
    event_file.new()
    answer = scf.main_handler(event, context)
    events = event_file.new()
    if not (isinstance(event, dict) and "httpMethod" in event and "requestContext" in event):
        return  # mutated into another trigger's shape: the SCF fuzz test's business
    assert set(answer) == {"isBase64Encoded", "statusCode", "headers", "body"}
    assert answer["isBase64Encoded"] is False
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in answer["headers"].items())
    check_webhook_answer(answer["statusCode"], answer["headers"].get("Content-Type"),
                         answer["body"])
    _no_event_for_a_transport_refusal(answer["statusCode"], events)


def test_fuzz_bodies_include_valid_requests_that_really_restore(gcp, gcs_live, event_file):
    """The strategies' unmutated shapes are real requests: without this, every property above
    could hold because nothing ever got past validation."""
    gcs_live.emulator.put_object("restore-demo", "hostile/gcs.txt", b"x")
    gcs_live.emulator.delete_object("restore-demo", "hostile/gcs.txt")
    body = json.dumps({"provider": "gcs", "bucket": "restore-demo",
                       "object": "hostile/gcs.txt"}).encode()
    event_file.new()
    response = gcp.http.post("/", data=body, headers=_headers(body, "application/json", "valid",
                                                              {}, SECRET))
    assert response.status_code == 200, response.data
    assert [e["data"]["outcome"] for e in event_file.new()] == ["completed"]


def test_scf_status_query_with_text_no_url_can_carry_is_refused_not_a_crash(scf):
    """API Gateway passes the query as JSON strings, which may hold a lone surrogate: found
    while fuzzing, as a 500 (the canonical query could not be encoded for the signature)."""
    for query in ({"provider": "cos", "key": "\ud800"}, {"\udfff": "1"}):
        event = copy.deepcopy(APIGW_GET)
        event["queryString"] = query
        answer = scf.main_handler(event, None)
        assert answer["statusCode"] == 401, answer
        check_webhook_answer(401, answer["headers"]["Content-Type"], answer["body"])
