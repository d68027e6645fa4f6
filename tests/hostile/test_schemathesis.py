"""Schemathesis drives the live webhook (``restore_http`` under the real functions-framework
command, gunicorn, on loopback) from its OpenAPI document: every request it generates is signed
with the test secret exactly as sent, and every answer must not be a server error and must
conform to the document (status code, content type, body schema).

The emulators behind the function hold the objects the document's examples name, so those
requests really restore; generated ones mostly exercise validation, which is the point of
generating them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared import auth
from shared.schema_export import openapi
from tests.conftest import COS_BUCKET, GCS_BUCKET
from tests.gcp.conftest import WEBHOOK_SECRET
from tests.hostile.conftest import count_case

SECRET = SecretStr(WEBHOOK_SECRET)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]

schema = schemathesis.openapi.from_dict(openapi())


class SigningSession(requests.Session):
    """Signs each request as it goes out: the body's exact bytes (a POST) or the canonical form
    of the query the function will parse (a GET), as a real caller must."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if request.method == "GET":
            pairs = parse_qsl(urlsplit(request.url or "").query, keep_blank_values=True)
            query: dict[str, str] = {}
            for name, value in pairs:
                query.setdefault(name, value)  # the function reads the first value
            signed = auth.canonical_query(query)
        else:
            body = request.body or b""
            signed = body.encode() if isinstance(body, str) else body
        request.headers.update(auth.sign(SECRET, signed))
        return super().send(request, **kwargs)


@pytest.fixture(scope="module")
def signer(live_webhook) -> Iterator[SigningSession]:
    """A signing session against the live function, its emulators holding what the document's
    examples name."""
    cos = live_webhook.cos.emulator
    for key in ("logs/2026-11-19.tar.gz", "logs/2026-11-20.tar.gz"):
        cos.put_object(COS_BUCKET, key, b"archived", "ARCHIVE")
    gcs = live_webhook.gcs.emulator
    for name in ("reports/q3.csv", "reports/q4.csv"):
        gcs.put_object(GCS_BUCKET, name, b"soft-deleted")
        gcs.delete_object(GCS_BUCKET, name)
    with SigningSession() as session:
        yield session


@schema.parametrize()
@settings(max_examples=40, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_the_live_webhook_answers_as_its_openapi_document_says(case, live_webhook, signer):
    count_case("schemathesis")
    response = case.call(base_url=live_webhook.url.rstrip("/"), session=signer, timeout=30)
    case.validate_response(response, checks=CHECKS)
