"""Issue 7 §4: every forged request is refused with 401 and reaches no provider.

Each case is sent to the real entry points (Google's ``restore_http`` and ``restore_recheck``
through functions-framework, SCF ``main_handler`` with an API Gateway event) while both emulators
record every request they receive: a refusal must leave both logs empty and publish nothing.
A valid copy of each request is sent last through the same path, so the suite would notice if
the forgeries were refused for some other reason (a broken fixture, a wrong route).
"""

# The Google and SCF fixtures are imported by name so pytest finds them here; parameters that
# name them are not redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from pydantic import SecretStr

from shared import auth
from shared.task_auth import sign_task
from tests.conftest import COS_BUCKET, cos_request, gcs_request
from tests.gcp.conftest import (  # noqa: F401 - fixtures used by name
    WEBHOOK_SECRET,
    cloud_tasks,
    gcp_env,
    http_client,
    printed_events,
    recheck_client,
    recheck_env,
    soft_delete,
)
from tests.gcp.test_recheck_function import body_of, deliver, initiate
from tests.tencent.conftest import SECRET as SCF_SECRET
from tests.tencent.conftest import golden, scf, scf_env  # noqa: F401 - fixtures used by name

SECRET = SecretStr(WEBHOOK_SECRET)
WINDOW = 300  # RESTORE_WEBHOOK_TOLERANCE_SECONDS's default

Headers = dict[str, str]


def _flip(hex_signature: str) -> str:
    """The same signature with its last hex digit changed."""
    scheme, digest = hex_signature.split("=", 1)
    return f"{scheme}={digest[:-1]}{'0' if digest[-1] != '0' else '1'}"


def forgeries(
    body: bytes, other_body: bytes, secret: SecretStr = SECRET
) -> dict[str, tuple[Headers, bytes]]:
    """Every way a caller without the secret (or with a stale capture) can try: headers + body."""
    now = int(time.time())
    good = auth.sign(secret, body, now)
    return {
        "unsigned": ({}, body),
        "timestamp only": ({auth.TIMESTAMP_HEADER: str(now)}, body),
        "wrong secret": (auth.sign(SecretStr("not-the-secret"), body, now), body),
        "empty secret": (auth.sign(SecretStr(""), body, now), body),
        # A captured request re-sent after the window closed (and one stamped in the future).
        "replayed after the window": (auth.sign(secret, body, now - WINDOW - 5), body),
        "stamped beyond the window": (auth.sign(secret, body, now + WINDOW + 5), body),
        "tampered body": (good, other_body),
        "tampered signature": ({**good, auth.SIGNATURE_HEADER: _flip(good[auth.SIGNATURE_HEADER])},
                               body),
        "tampered timestamp": ({**good, auth.TIMESTAMP_HEADER: str(now - 1)}, body),
        "signature of another body": (auth.sign(secret, other_body, now), body),
        "other scheme": ({**good, auth.SIGNATURE_HEADER: good[auth.SIGNATURE_HEADER]
                          .replace("v1=", "v0=")}, body),
        "task signature": ({**sign_task(secret, body), auth.TIMESTAMP_HEADER: str(now)}, body),
        "non-ascii signature": ({**good, auth.SIGNATURE_HEADER: "v1=\u00e9" * 8}, body),
    }


CASES = list(forgeries(b"{}", b"[]"))


def _nothing_reached_a_provider(cos_emulator: Any, gcs_emulator: Any) -> None:
    assert cos_emulator.log.entries() == []
    assert gcs_emulator.log.entries() == []


def _refused(status: int, body: dict[str, Any]) -> None:
    assert status == 401
    assert body["error"]["code"] == "unauthenticated"
    assert body["error"]["message"]  # says why, for the caller to fix


# -- Google restore_http: POST restores and the status GET --------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_forged_webhook_posts_are_401_and_reach_no_provider(
    case: str, http_client: Any, cos_emulator: Any, gcs_emulator: Any, capsys: Any,
) -> None:
    cos_emulator.emulator.put_object(COS_BUCKET, "a/forged.bin", b"x", "ARCHIVE")
    cos_emulator.log.clear()
    body = json.dumps(cos_request("a/forged.bin", request_id="forged-1")).encode()
    other = json.dumps(cos_request("a/other.bin", request_id="forged-1")).encode()
    headers, sent = forgeries(body, other)[case]
    response = http_client.post("/", data=sent,
                                headers={"Content-Type": "application/json", **headers})
    _refused(response.status_code, response.get_json())
    _nothing_reached_a_provider(cos_emulator, gcs_emulator)
    assert printed_events(capsys.readouterr().out) == []

    genuine = http_client.post("/", data=body, headers={"Content-Type": "application/json",
                                                          **auth.sign(SECRET, body)})
    assert genuine.status_code == 202, genuine.get_json()
    assert len(cos_emulator.emulator.restore_requests()) == 1


def _query_forgeries(query: dict[str, str]) -> dict[str, Headers]:
    now = int(time.time())
    good = auth.sign_query(SECRET, query, now)
    return {
        "unsigned": {},
        # What a GET signed before queries were signed: the empty body.
        "empty-body signature": auth.sign(SECRET, b"", now),
        "signature of another query": auth.sign_query(SECRET, {**query, "object": "other"}, now),
        "replayed after the window": auth.sign_query(SECRET, query, now - WINDOW - 5),
        "wrong secret": auth.sign_query(SecretStr("not-the-secret"), query, now),
        "tampered signature": {**good, auth.SIGNATURE_HEADER: _flip(good[auth.SIGNATURE_HEADER])},
    }


@pytest.mark.parametrize("case", list(_query_forgeries({"a": "b"})))
def test_forged_status_gets_are_401_and_reach_no_provider(
    case: str, http_client: Any, cos_emulator: Any, gcs_emulator: Any,
) -> None:
    soft_delete(gcs_emulator, "reports/asked.csv")
    gcs_emulator.log.clear()
    query = {"provider": "gcs", "bucket": gcs_request()["bucket"], "object": "reports/asked.csv"}
    response = http_client.get("/status", query_string=query,
                               headers=_query_forgeries(query)[case])
    _refused(response.status_code, response.get_json())
    _nothing_reached_a_provider(cos_emulator, gcs_emulator)

    genuine = http_client.get("/status", query_string=query,
                              headers=auth.sign_query(SECRET, query))
    assert genuine.status_code == 200, genuine.get_json()
    assert genuine.get_json()["state"] == "soft_deleted"


def test_a_signed_status_get_cannot_be_resent_with_another_query(
    http_client: Any, gcs_emulator: Any,
) -> None:
    """The signature covers the query: the captured headers of one status read do not read
    another object (before, a GET signed only its empty body)."""
    soft_delete(gcs_emulator, "reports/mine.csv")
    soft_delete(gcs_emulator, "reports/theirs.csv")
    bucket = gcs_request()["bucket"]
    mine = {"provider": "gcs", "bucket": bucket, "object": "reports/mine.csv"}
    headers = auth.sign_query(SECRET, mine)
    assert http_client.get("/status", query_string=mine, headers=headers).status_code == 200
    theirs = {**mine, "object": "reports/theirs.csv"}
    response = http_client.get("/status", query_string=theirs, headers=headers)
    assert response.status_code == 401


def test_the_canonical_query_ignores_order_and_escaping_but_not_values() -> None:
    assert auth.canonical_query({"b": "2", "a": "x y/z"}) == b"a=x%20y%2Fz&b=2"
    assert auth.canonical_query({"a": "x y/z", "b": "2"}) == auth.canonical_query(
        {"b": "2", "a": "x y/z"})
    assert auth.canonical_query({"a": "1&b=2"}) != auth.canonical_query({"a": "1", "b": "2"})
    assert auth.canonical_query({"o": "\u00e9"}) == b"o=%C3%A9"


def test_a_replay_inside_the_window_restores_nothing_twice(
    http_client: Any, gcs_emulator: Any, capsys: Any,
) -> None:
    """Inside the window a captured request still verifies; the ledger makes it harmless: the
    same answer, no second provider call, no second event."""
    generation = soft_delete(gcs_emulator, "reports/replayed.csv")
    body = json.dumps(gcs_request("reports/replayed.csv", generation=str(generation),
                                  request_id="replay-1")).encode()
    headers = {"Content-Type": "application/json", **auth.sign(SECRET, body)}
    first = http_client.post("/", data=body, headers=headers)
    again = http_client.post("/", data=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.get_json()["outcome"] == first.get_json()["outcome"]
    restores = [e for e in gcs_emulator.log.entries() if e.path.endswith("/restore")]
    assert len(restores) == 1
    assert len(printed_events(capsys.readouterr().out)) == 1


# -- Google restore_recheck: Cloud Tasks bodies signed with the task scheme ---------------------
def _task_forgeries(body: bytes, other: bytes) -> dict[str, Headers]:
    good = sign_task(SECRET, body)
    name = next(iter(good))
    return {
        "unsigned": {},
        "wrong secret": sign_task(SecretStr("not-the-secret"), body),
        "signature of another body": sign_task(SECRET, other),
        "webhook signature": auth.sign(SECRET, body),
        "tampered signature": {name: _flip(good[name])},
    }


@pytest.mark.parametrize("case", list(_task_forgeries(b"{}", b"[]")))
def test_forged_recheck_tasks_are_401_and_reach_no_provider(
    case: str, recheck_client: Any, cos_emulator: Any, gcs_emulator: Any, cloud_tasks: Any,
    capsys: Any,
) -> None:
    task = initiate(cos_emulator, cloud_tasks, "a/forged.bin", "rc-forged")  # a real task
    cos_emulator.emulator.clock.advance(61)
    cos_emulator.log.clear()
    body = body_of(task)
    headers = _task_forgeries(body, body.replace(b"rc-forged", b"rc-forgex"))[case]
    response = deliver(recheck_client, task, headers={"Content-Type": "application/json",
                                                       **headers})
    _refused(response.status_code, response.get_json())
    _nothing_reached_a_provider(cos_emulator, gcs_emulator)
    assert printed_events(capsys.readouterr().out) == []

    genuine = deliver(recheck_client, task)
    assert genuine.status_code == 200, genuine.get_json()
    assert [e.method for e in cos_emulator.log.entries()] == ["HEAD"]


# -- Tencent SCF main_handler: API Gateway POST ------------------------------------------------
def _apigw(body: bytes, headers: Headers) -> dict[str, Any]:
    event = golden("scf_apigw_post.json")
    event["headers"] = {"content-type": "application/json",
                        **{k.lower(): v for k, v in headers.items()}}
    event["body"] = body.decode()
    return event


def _answer(response: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize("case", CASES)
def test_forged_api_gateway_posts_are_401_and_reach_no_provider(
    case: str, scf: Any, cos_emulator: Any, gcs_emulator: Any, capsys: Any,
) -> None:
    cos_emulator.emulator.put_object(COS_BUCKET, "a/forged.bin", b"x", "ARCHIVE")
    cos_emulator.log.clear()
    body = json.dumps(cos_request("a/forged.bin", request_id="forged-scf")).encode()
    other = json.dumps(cos_request("a/other.bin", request_id="forged-scf")).encode()
    headers, sent = forgeries(body, other, SCF_SECRET)[case]
    _refused(*_answer(scf.main_handler(_apigw(sent, headers), None)))
    _nothing_reached_a_provider(cos_emulator, gcs_emulator)
    assert printed_events(capsys.readouterr().out) == []

    status, answer = _answer(scf.main_handler(_apigw(body, auth.sign(SCF_SECRET, body)), None))
    assert status == 202, answer
    [posted] = cos_emulator.emulator.restore_requests()
    assert (posted["bucket"], posted["key"]) == (COS_BUCKET, "a/forged.bin")
