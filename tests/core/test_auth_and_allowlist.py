"""HMAC webhook authentication and the deny-by-default bucket allowlist."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import SecretStr

from shared import auth
from shared.allowlist import BucketAllowlist
from shared.config import ConfigurationError, Settings

SECRET = SecretStr("test-webhook-secret")
BODY = b'{"provider":"gcs","bucket":"b","object":"o"}'
NOW = 1_800_000_000


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    headers = auth.sign(SECRET, BODY, timestamp=NOW)
    expected = hmac.new(b"test-webhook-secret", f"{NOW}.".encode() + BODY, hashlib.sha256)
    assert headers[auth.SIGNATURE_HEADER] == f"v1={expected.hexdigest()}"
    assert headers[auth.TIMESTAMP_HEADER] == str(NOW)


def test_valid_signature_passes_with_any_header_case():
    headers = {k.lower(): v for k, v in auth.sign(SECRET, BODY, timestamp=NOW).items()}
    auth.verify([SECRET], headers, BODY, now=NOW + 10)


def test_rotated_secrets_both_verify():
    old, new = SecretStr("old"), SecretStr("new")
    auth.verify([new, old], auth.sign(old, BODY, timestamp=NOW), BODY, now=NOW)
    auth.verify([new, old], auth.sign(new, BODY, timestamp=NOW), BODY, now=NOW)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h, b: ({}, b), "missing"),
        (lambda h, b: (h, b + b" "), "does not match"),
        (lambda h, b: ({**h, auth.SIGNATURE_HEADER: "v1=" + "0" * 64}, b), "does not match"),
        (lambda h, b: ({**h, auth.SIGNATURE_HEADER: "sha1=abc"}, b), "form"),
        (lambda h, b: ({**h, auth.TIMESTAMP_HEADER: "yesterday"}, b), "unix seconds"),
    ],
)
def test_tampered_or_malformed_requests_fail(mutate, reason):
    headers, body = mutate(auth.sign(SECRET, BODY, timestamp=NOW), BODY)
    with pytest.raises(auth.AuthenticationError, match=reason):
        auth.verify([SECRET], headers, body, now=NOW)


def test_replay_outside_the_window_fails():
    headers = auth.sign(SECRET, BODY, timestamp=NOW)
    auth.verify([SECRET], headers, BODY, now=NOW + 300)
    with pytest.raises(auth.AuthenticationError, match="window"):
        auth.verify([SECRET], headers, BODY, now=NOW + 301)
    with pytest.raises(auth.AuthenticationError, match="window"):
        auth.verify([SECRET], headers, BODY, now=NOW - 301)


def test_no_configured_secret_refuses_everything():
    with pytest.raises(auth.AuthenticationError, match="not configured"):
        auth.verify([], auth.sign(SECRET, BODY), BODY)


def test_authentication_errors_do_not_reveal_the_secret():
    headers = {auth.TIMESTAMP_HEADER: str(NOW), auth.SIGNATURE_HEADER: "v1=00"}
    with pytest.raises(auth.AuthenticationError) as caught:
        auth.verify([SECRET], headers, BODY, now=NOW)
    assert "test-webhook-secret" not in str(caught.value)


def test_allowlist_denies_by_default_and_says_how_to_configure():
    refusal = BucketAllowlist.from_settings(Settings()).refusal("gcs", "anything")
    assert refusal is not None
    assert "RESTORE_GCS_ALLOWED_BUCKETS" in refusal


def test_allowlist_patterns_are_per_provider_globs():
    settings = Settings.from_env(
        {"RESTORE_GCS_ALLOWED_BUCKETS": "logs-*, exact-bucket",
         "RESTORE_COS_ALLOWED_BUCKETS": "archive-*-1250000000"}
    )
    allowlist = BucketAllowlist.from_settings(settings)
    assert allowlist.refusal("gcs", "logs-2026") is None
    assert allowlist.refusal("gcs", "exact-bucket") is None
    assert allowlist.refusal("gcs", "exact-bucket-2") is not None
    assert allowlist.refusal("cos", "logs-2026") is not None
    assert allowlist.refusal("cos", "archive-eu-1250000000") is None


def test_settings_hide_secrets_and_name_bad_variables_without_values():
    settings = Settings.from_env(
        {"COS_SECRET_KEY": "very-secret", "RESTORE_WEBHOOK_SECRETS": "a,b"}
    )
    assert "very-secret" not in repr(settings)
    assert len(settings.webhook_secrets) == 2
    with pytest.raises(ConfigurationError, match="max_attempts") as caught:
        Settings.from_env({"RESTORE_MAX_ATTEMPTS": "lots", "COS_SECRET_KEY": "very-secret"})
    assert "very-secret" not in str(caught.value)


def test_non_ascii_signature_and_timestamp_headers_are_refused_not_raised() -> None:
    import time as _time

    from pydantic import SecretStr as _Secret

    from shared.auth import AuthenticationError, verify

    stamp = str(int(_time.time()))
    for headers in (
        {"X-Restore-Timestamp": stamp, "X-Restore-Signature": "v1=caf\u00e9"},
        {"X-Restore-Timestamp": "\u0661\u0662", "X-Restore-Signature": "v1=00"},
    ):
        try:
            verify([_Secret("s3cret")], headers, b"{}")
        except AuthenticationError:
            continue
        raise AssertionError(f"accepted {headers}")
