"""Signed re-check tasks: an HMAC over the task body, so a leaked re-check URL cannot inject one.

When the webhook HMAC secrets are configured, the scheduler (``shared.schedulers.cloudtasks``)
adds ``X-Restore-Task-Signature: v1=<hex HMAC-SHA256(secret, "restorefn.recheck." + body)>`` to
every task it creates (with the first secret), and the re-check endpoint (``shared.recheck_http``)
accepts a body only if one of the secrets made that signature: rotation works as for the webhook.

No timestamp, unlike the webhook's signature: a task is delivered when it is due, hours (chained:
days) after it was signed, and Cloud Tasks retries it later still, so no replay window could
apply. A replayed body can only repeat one look at one scheduled check of a restore this package
started, and the ledger already makes that harmless (each check runs once; a request's
``completed`` is published once). The prefix keeps a task signature from ever verifying as a
webhook signature and the other way round (those sign ``"<digits>." + body``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

from shared.auth import AuthenticationError
from shared.records import SecretValue

SIGNATURE_HEADER = "X-Restore-Task-Signature"
SCHEME = "v1"
_PREFIX = b"restorefn.recheck."


def _digest(secret: SecretValue, body: bytes) -> str:
    return hmac.new(secret.get_secret_value().encode(), _PREFIX + body, hashlib.sha256).hexdigest()


def sign_task(secret: SecretValue, body: bytes) -> dict[str, str]:
    """The header that authenticates a re-check task's ``body``."""
    return {SIGNATURE_HEADER: f"{SCHEME}={_digest(secret, body)}"}


def verify_task(secrets: Iterable[SecretValue], headers: Mapping[str, str], body: bytes) -> None:
    """Raise AuthenticationError unless one of ``secrets`` signed ``body``; the message is safe to
    return to the caller (it never names a secret or the body)."""
    keys = list(secrets)
    if not keys:
        raise AuthenticationError("task authentication is not configured")
    wanted = SIGNATURE_HEADER.lower()
    signature = next((v for k, v in headers.items() if k.lower() == wanted), None)
    if not signature:
        raise AuthenticationError(f"missing {SIGNATURE_HEADER} header")
    offered = [
        part.strip()[len(SCHEME) + 1:]
        for part in signature.split(",")
        if part.strip().startswith(f"{SCHEME}=")
    ]
    if not offered:
        raise AuthenticationError(f"{SIGNATURE_HEADER} must be of the form {SCHEME}=<hex>")
    # Every key against every candidate, so timing does not reveal which key matched.
    matched = False
    for key in keys:
        expected = _digest(key, body).encode()
        for candidate in offered:
            # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError).
            matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    if not matched:
        raise AuthenticationError("task signature does not match")
