"""Webhook authentication: HMAC-SHA256 over a timestamp and the raw body.

Scheme: headers ``X-Restore-Timestamp: <unix seconds>`` and
``X-Restore-Signature: v1=<hex hmac_sha256(secret, "<timestamp>." + body)>``. A GET has no body: its
signed bytes are the query in canonical form (``canonical_query``), so a captured status request
cannot be re-sent with another query. The timestamp bounds replay to a window (default five
minutes); several secrets may be configured at once so a secret
can be rotated without downtime; comparison is constant-time. The same scheme signs what we send
(HTTP event sink, callbacks), so a receiver can verify us with the same few lines.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from urllib.parse import quote

from shared.records import SecretValue

TIMESTAMP_HEADER = "X-Restore-Timestamp"
SIGNATURE_HEADER = "X-Restore-Signature"
SCHEME = "v1"


class AuthenticationError(Exception):
    """Why a request was not authenticated; the message is safe to return to the caller."""


def _digest(secret: SecretValue, timestamp: str, body: bytes) -> str:
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.get_secret_value().encode(), message, hashlib.sha256).hexdigest()


def sign(secret: SecretValue, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers that authenticate ``body``."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: f"{SCHEME}={_digest(secret, stamp, body)}"}


def canonical_query(query: Mapping[str, str]) -> bytes:
    """The bytes a GET's signature covers: ``key=value`` pairs sorted by key, each part
    percent-encoded (RFC 3986 unreserved characters kept), joined with ``&``.

    Sorting and re-encoding make the form independent of how a client or a gateway ordered and
    escaped the parameters; the parsed values are what the function acts on, so they are what
    is signed.
    """
    pairs = sorted((quote(str(k), safe="-_.~"), quote(str(v), safe="-_.~"))
                   for k, v in query.items())
    return "&".join(f"{k}={v}" for k, v in pairs).encode("ascii")


def sign_query(
    secret: SecretValue, query: Mapping[str, str], timestamp: int | None = None
) -> dict[str, str]:
    """The headers that authenticate a GET with ``query``."""
    return sign(secret, canonical_query(query), timestamp)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify(
    secrets: Iterable[SecretValue],
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> None:
    """Raise AuthenticationError unless ``body`` was signed by one of ``secrets`` recently."""
    keys = list(secrets)
    if not keys:
        raise AuthenticationError("webhook authentication is not configured")
    stamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if not stamp or not signature:
        raise AuthenticationError(
            f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header"
        )
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
        raise AuthenticationError(f"{TIMESTAMP_HEADER} must be unix seconds")
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > tolerance_seconds:
        raise AuthenticationError("timestamp outside the allowed window")
    offered = [
        part.split("=", 1)[1]
        for part in signature.split(",")
        if part.strip().startswith(f"{SCHEME}=")
    ]
    if not offered:
        raise AuthenticationError(f"signature must be of the form {SCHEME}=<hex>")
    # Compare against every key even after a match so timing does not reveal which one matched.
    matched = False
    for key in keys:
        expected = _digest(key, stamp, body)
        for candidate in offered:
            # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError).
            matched |= hmac.compare_digest(expected.encode(),
                                           candidate.strip().encode("utf-8", "replace"))
    if not matched:
        raise AuthenticationError("signature does not match")
