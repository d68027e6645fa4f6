"""Google Cloud Tasks v2 REST emulator (HTTP-target tasks, scheduled dispatch, retries)."""

from .server import (
    CloudTasksEmulator,
    RetryConfig,
    decode_unverified_jwt,
    fake_oidc_token,
    format_timestamp,
    parse_timestamp,
    queue_path,
)

__all__ = [
    "CloudTasksEmulator",
    "RetryConfig",
    "decode_unverified_jwt",
    "fake_oidc_token",
    "format_timestamp",
    "parse_timestamp",
    "queue_path",
]
