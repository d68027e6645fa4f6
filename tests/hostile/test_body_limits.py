"""Bodies over the webhook's documented limit (256 KiB, ``MAX_BODY_BYTES``) are refused with
413 before they are parsed, on every HTTP entry: ``restore_http`` and ``restore_recheck``
(functions-framework, Content-Length or chunked), and the SCF API Gateway path (plain or
base64 body). "Before parsing" is shown by what an oversized body cannot get: one that is also
invalid JSON, invalid base64, unsigned or of the wrong content type still gets the 413, never
the 400, 401 or 415 that parsing or authenticating it would give.

``restore_pubsub`` has no limit of its own: Pub/Sub bounds a message at 10 MB before the
function sees it, and the framework parses the envelope before any code of ours runs.
"""

from __future__ import annotations

import base64
import json
import socket

import pytest
from pydantic import SecretStr

from shared import auth, task_auth
from shared.webhook import MAX_BODY_BYTES
from tests.gcp.conftest import WEBHOOK_SECRET
from tests.hostile.contract import check_error, strict_json
from tests.tencent.conftest import SECRET as SCF_SECRET
from tests.tencent.conftest import golden

SECRET = SecretStr(WEBHOOK_SECRET)
NOT_JSON = b"{" + b"x" * MAX_BODY_BYTES  # invalid JSON, one byte over


def _is_413(status: int, raw: bytes | str) -> None:
    assert status == 413, raw[:200]
    error = strict_json(raw)["error"]
    check_error(error)
    assert error["code"] == "body_too_large"


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
@pytest.mark.parametrize("target", ["http", "recheck"])
def test_functions_framework_refuses_an_oversized_body_before_auth_or_parsing(
    gcp, event_file, target, content_type
):
    client = getattr(gcp, target)
    event_file.new()
    response = client.post("/", data=NOT_JSON, headers={"Content-Type": content_type})
    _is_413(response.status_code, response.data)
    assert event_file.new() == []


@pytest.mark.parametrize("target", ["http", "recheck"])
def test_a_body_at_the_limit_is_read_and_judged_on_its_content(gcp, target):
    body = b"{" + b"x" * (MAX_BODY_BYTES - 1)  # exactly the limit, still not JSON
    sign = auth.sign(SECRET, body) if target == "http" else task_auth.sign_task(SECRET, body)
    response = getattr(gcp, target).post(
        "/", data=body, headers={"Content-Type": "application/json", **sign})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"


def _apigw(body: str, *, encoded: bool, signed_over: bytes | None = None) -> dict:
    event = golden("scf_apigw_post.json")
    event["body"] = body
    event["isBase64Encoded"] = encoded
    if signed_over is not None:
        event["headers"].update({k.lower(): v for k, v in auth.sign(SCF_SECRET,
                                                                     signed_over).items()})
    return event


def _scf_answer(scf, event) -> tuple[int, str]:
    answer = scf.main_handler(event, None)
    return answer["statusCode"], answer["body"]


OVERSIZED_SCF_BODIES = {
    "plain_not_json": ("{" + "x" * MAX_BODY_BYTES, False),
    # Fewer characters than the limit, more bytes: the limit is on bytes.
    "plain_multibyte": ("\u00e9" * (MAX_BODY_BYTES // 2 + 1), False),
    "base64_not_base64": ("!" * (4 * (MAX_BODY_BYTES // 3 + 2)), True),
    "base64_valid": (base64.b64encode(b"x" * (MAX_BODY_BYTES + 1)).decode(), True),
    "base64_with_whitespace": (
        "\n".join(base64.b64encode(b"y" * (MAX_BODY_BYTES + 3)).decode()[i:i + 76]
                  for i in range(0, 4 * (MAX_BODY_BYTES // 3 + 1) + 4, 76)), True),
}


@pytest.mark.parametrize(("body", "encoded"), list(OVERSIZED_SCF_BODIES.values()),
                         ids=list(OVERSIZED_SCF_BODIES))
def test_scf_refuses_an_oversized_body_before_decoding_it(scf, event_file, body, encoded):
    event_file.new()
    _is_413(*_scf_answer(scf, _apigw(body, encoded=encoded)))  # unsigned: 413 comes first
    assert event_file.new() == []


@pytest.mark.parametrize("encoded", [False, True])
def test_scf_reads_a_body_of_exactly_the_limit(scf, encoded):
    raw = b"[" + b"1," * ((MAX_BODY_BYTES - 3) // 2) + b"1]"
    raw += b" " * (MAX_BODY_BYTES - len(raw))
    assert len(raw) == MAX_BODY_BYTES
    body = base64.b64encode(raw).decode() if encoded else raw.decode()
    status, answer = _scf_answer(scf, _apigw(body, encoded=encoded, signed_over=raw))
    assert status == 422, answer[:200]  # parsed: a JSON array is no restore request
    assert json.loads(answer)["error"]["code"] == "validation_failed"


# -- the live server: what gunicorn and werkzeug do with a body without Content-Length ----------
def _chunked_post(port: int, total: int, headers: dict[str, str]) -> tuple[int, bytes]:
    """POST ``total`` bytes of not-JSON with Transfer-Encoding: chunked; (status, body)."""
    lines = ["POST / HTTP/1.1", "Host: 127.0.0.1", "Transfer-Encoding: chunked",
             "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        sent = 0
        try:
            while sent < total:
                size = min(64 * 1024, total - sent)
                sock.sendall(b"%x\r\n" % size + b"{" * size + b"\r\n")
                sent += size
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may answer and close before the rest is sent
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize("total", [MAX_BODY_BYTES + 1, 8 * MAX_BODY_BYTES])
def test_a_chunked_body_over_the_limit_is_refused_by_the_live_server(live_webhook, total):
    status, body = _chunked_post(live_webhook.port, total, {"Content-Type": "application/json"})
    _is_413(status, body)


def test_a_chunked_body_within_the_limit_is_read(live_webhook):
    status, body = _chunked_post(live_webhook.port, MAX_BODY_BYTES,
                                 {"Content-Type": "application/json"})
    assert status == 401  # read in full, then refused for what it is: unsigned
    assert strict_json(body)["error"]["code"] == "unauthenticated"
