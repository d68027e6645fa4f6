"""Configuration, read once from the environment.

Every knob has an environment variable (listed in the README) so both platforms configure the
package the same way. Secrets are ``SecretStr``: they print as ``**********`` wherever a settings
object ends up in a log line or an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


class ConfigurationError(RuntimeError):
    """The deployment is misconfigured; the message says which variable to set."""


class CosSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    secret_id: SecretStr | None = None
    secret_key: SecretStr | None = None
    session_token: SecretStr | None = None
    # e.g. http://127.0.0.1:9000 for the local emulator; None means the real COS endpoint.
    endpoint: str | None = None
    scheme: Literal["http", "https"] = "https"
    pool_size: int = Field(default=10, ge=1, le=256)


class GcsSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    project: str | None = None
    # e.g. http://127.0.0.1:9023 for the local emulator (anonymous credentials then).
    endpoint: str | None = None


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    cos_allowed_buckets: tuple[str, ...] = ()
    gcs_allowed_buckets: tuple[str, ...] = ()
    cos: CosSettings = CosSettings()
    gcs: GcsSettings = GcsSettings()
    # One provider call may take this long; the whole request (retries included) `deadline`.
    provider_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    deadline_seconds: float = Field(default=45.0, gt=0, le=3600)
    max_attempts: int = Field(default=3, ge=1, le=10)
    retry_base_seconds: float = Field(default=0.5, ge=0, le=60)
    retry_max_seconds: float = Field(default=8.0, ge=0, le=300)
    event_sink: Literal["log", "http", "pubsub"] = "log"
    event_http_url: str | None = None
    event_http_secret: SecretStr | None = None
    event_http_attempts: int = Field(default=4, ge=1, le=10)
    # projects/P/topics/T; with PUBSUB_EMULATOR_HOST (host:port) published there, unauthenticated.
    event_pubsub_topic: str | None = None
    event_pubsub_endpoint: str | None = None
    event_pubsub_attempts: int = Field(default=4, ge=1, le=10)
    # "hmac" (RESTORE_WEBHOOK_SECRETS) or "iam" (the platform authenticates callers); unset
    # means hmac when secrets are configured and refuse-everything otherwise.
    webhook_auth: Literal["hmac", "iam"] | None = None
    webhook_secrets: tuple[SecretStr, ...] = ()
    webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else None

        raw: dict[str, object] = {
            "cos_allowed_buckets": _csv(get("RESTORE_COS_ALLOWED_BUCKETS")),
            "gcs_allowed_buckets": _csv(get("RESTORE_GCS_ALLOWED_BUCKETS")),
            "cos": {
                # SCF injects the execution role's temporary keys under TENCENTCLOUD_*.
                "secret_id": get("COS_SECRET_ID") or get("TENCENTCLOUD_SECRETID"),
                "secret_key": get("COS_SECRET_KEY") or get("TENCENTCLOUD_SECRETKEY"),
                "session_token": get("COS_SESSION_TOKEN") or get("TENCENTCLOUD_SESSIONTOKEN"),
                "endpoint": get("COS_ENDPOINT"),
                "scheme": get("COS_SCHEME") or "https",
                "pool_size": get("COS_POOL_SIZE") or 10,
            },
            "gcs": {
                "project": get("GOOGLE_CLOUD_PROJECT") or get("GCLOUD_PROJECT"),
                "endpoint": get("GCS_ENDPOINT") or get("STORAGE_EMULATOR_HOST"),
            },
            "event_sink": get("RESTORE_EVENT_SINK") or "log",
            "event_http_url": get("RESTORE_EVENT_HTTP_URL"),
            "event_http_secret": get("RESTORE_EVENT_HTTP_SECRET"),
            "event_pubsub_topic": get("RESTORE_EVENT_PUBSUB_TOPIC"),
            "event_pubsub_endpoint": get("PUBSUB_EMULATOR_HOST"),
            "webhook_auth": get("RESTORE_WEBHOOK_AUTH"),
            "webhook_secrets": _csv(get("RESTORE_WEBHOOK_SECRETS")),
        }
        optional = {
            "provider_timeout_seconds": "RESTORE_PROVIDER_TIMEOUT_SECONDS",
            "deadline_seconds": "RESTORE_DEADLINE_SECONDS",
            "max_attempts": "RESTORE_MAX_ATTEMPTS",
            "retry_base_seconds": "RESTORE_RETRY_BASE_SECONDS",
            "retry_max_seconds": "RESTORE_RETRY_MAX_SECONDS",
            "event_http_attempts": "RESTORE_EVENT_HTTP_ATTEMPTS",
            "event_pubsub_attempts": "RESTORE_EVENT_PUBSUB_ATTEMPTS",
            "webhook_tolerance_seconds": "RESTORE_WEBHOOK_TOLERANCE_SECONDS",
        }
        raw.update({field: get(var) for field, var in optional.items() if get(var) is not None})
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            # Name the setting and the reason, never the value: it may be a secret.
            details = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                for e in exc.errors(include_input=False, include_url=False)
            )
            raise ConfigurationError(f"invalid configuration: {details}") from None
