"""Tencent Cloud API 3.0 request signatures (``TC3-HMAC-SHA256``), as tencentcloud-sdk-python signs.

The SDK (``tencentcloud/common/abstract_client.py``) builds, for a ``POST /`` with a JSON body::

    CanonicalRequest = "POST" \\n "/" \\n "" \\n "content-type:<ct>\\nhost:<host>\\n" \\n
                       "content-type;host" \\n sha256hex(body)
    StringToSign     = "TC3-HMAC-SHA256" \\n <X-TC-Timestamp> \\n <date>/<service>/tc3_request \\n
                       sha256hex(CanonicalRequest)
    SecretDate       = HMAC-SHA256("TC3" + SecretKey, date)      # date = UTC day of the timestamp
    SecretService    = HMAC-SHA256(SecretDate, service)
    SecretSigning    = HMAC-SHA256(SecretService, "tc3_request")
    Signature        = hex(HMAC-SHA256(SecretSigning, StringToSign))

and sends ``Authorization: TC3-HMAC-SHA256 Credential=<id>/<date>/<service>/tc3_request,
SignedHeaders=content-type;host, Signature=<hex>``. Header names and values are lower-cased and
trimmed in the canonical form. With ``X-TC-Content-SHA256: UNSIGNED-PAYLOAD`` the literal string
``UNSIGNED-PAYLOAD`` is hashed instead of the body.

:func:`sign_headers` is the client side of the same computation, for tests that need to send a
hand-made request (an expired timestamp, a tampered body) the SDK would never produce.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

ALGORITHM = "TC3-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

_AUTH_RE = re.compile(
    r"^TC3-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-fA-F]+)\s*$"
)


@dataclass(frozen=True)
class Tc3Authorization:
    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> Tc3Authorization:
    """Split an ``Authorization`` header; ValueError names what is wrong with it."""
    match = _AUTH_RE.match(value.strip())
    if match is None:
        raise ValueError(
            "expected 'TC3-HMAC-SHA256 Credential=<id>/<date>/<service>/tc3_request, "
            "SignedHeaders=<names>, Signature=<hex>'"
        )
    parts = match.group("credential").split("/")
    if len(parts) != 4 or parts[3] != "tc3_request" or not all(parts):
        raise ValueError("Credential must be <SecretId>/<date>/<service>/tc3_request")
    signed = tuple(name for name in match.group("signed").lower().split(";") if name)
    return Tc3Authorization(
        secret_id=parts[0],
        date=parts[1],
        service=parts[2],
        signed_headers=signed,
        signature=match.group("signature").lower(),
    )


def utc_date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d")


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: tuple[str, ...],
    payload: bytes,
    *,
    unsigned_payload: bool = False,
) -> tuple[str, list[str]]:
    """The canonical request, and the signed header names the request does not carry.

    ``headers`` maps lower-cased names to values as received.
    """
    missing = [name for name in signed_headers if name not in headers]
    canonical_headers = "".join(
        f"{name}:{headers.get(name, '').strip().lower()}\n" for name in signed_headers
    )
    body = UNSIGNED_PAYLOAD.encode() if unsigned_payload else payload
    digest = hashlib.sha256(body).hexdigest()
    text = "\n".join(
        [method.upper(), path, query, canonical_headers, ";".join(signed_headers), digest]
    )
    return text, missing


def string_to_sign(timestamp: str, date: str, service: str, canonical: str) -> str:
    scope = f"{date}/{service}/tc3_request"
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def compute_signature(secret_key: str, date: str, service: str, to_sign: str) -> str:
    def _hmac(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()

    k_date = _hmac(("TC3" + secret_key).encode("utf-8"), date)
    k_service = _hmac(k_date, service)
    k_signing = _hmac(k_service, "tc3_request")
    return hmac.new(k_signing, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def sign_headers(
    secret_id: str,
    secret_key: str,
    *,
    action: str,
    params: Mapping[str, Any],
    host: str,
    timestamp: int,
    version: str = "2020-02-17",
    region: str | None = "ap-guangzhou",
    service: str = "tdmq",
    token: str | None = None,
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a signed ``POST /``, as the SDK would send them at ``timestamp``."""
    body = json.dumps(dict(params)).encode("utf-8")
    content_type = "application/json"
    date = utc_date(timestamp)
    signed = ("content-type", "host")
    canonical, _ = canonical_request(
        "POST", "/", "", {"content-type": content_type, "host": host}, signed, body
    )
    signature = compute_signature(
        secret_key, date, service, string_to_sign(str(timestamp), date, service, canonical)
    )
    headers = {
        "Content-Type": content_type,
        "Host": host,
        "X-TC-Action": action,
        "X-TC-Version": version,
        "X-TC-Timestamp": str(timestamp),
        "Authorization": (
            f"{ALGORITHM} Credential={secret_id}/{date}/{service}/tc3_request, "
            f"SignedHeaders={';'.join(signed)}, Signature={signature}"
        ),
    }
    if region:
        headers["X-TC-Region"] = region
    if token:
        headers["X-TC-Token"] = token
    return headers, body
