"""Configuration, read once from the environment.

Every knob has an environment variable (listed in the README) so both platforms configure the
package the same way. Secrets are ``SecretStr``: they print as ``**********`` wherever a settings
object ends up in a log line or an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


class ConfigurationError(RuntimeError):
    """The deployment is misconfigured; the message says which variable to set."""


# TDMQ CMQ: SendCmqMsg's DelaySeconds is at most 3600 (and at most the queue's
# MsgRetentionSeconds); longer re-check delays are chained (shared.recheck.plan).
TDMQ_MAX_DELAY_SECONDS = 3600.0


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
    # Whether a GCS restore may replace a live object (allow_overwrite). Off, such requests are
    # refused before the provider call, so a deployment without storage.objects.delete gets a
    # clear 422 rather than the provider's 403 (deploy.sh grants delete only when this is on).
    gcs_allow_overwrite: bool = True
    cos: CosSettings = CosSettings()
    gcs: GcsSettings = GcsSettings()
    # One provider call may take this long; the whole request (retries included) `deadline`.
    provider_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    deadline_seconds: float = Field(default=45.0, gt=0, le=3600)
    max_attempts: int = Field(default=3, ge=1, le=10)
    retry_base_seconds: float = Field(default=0.5, ge=0, le=60)
    retry_max_seconds: float = Field(default=8.0, ge=0, le=300)
    event_sink: Literal["log", "http", "pubsub", "tdmq", "file"] = "log"
    # RESTORE_EVENT_SINK=file: one CloudEvent JSON per line appended here (local use, the CLI).
    event_file: str | None = None
    event_http_url: str | None = None
    event_http_secret: SecretStr | None = None
    event_http_attempts: int = Field(default=4, ge=1, le=10)
    # projects/P/topics/T; with PUBSUB_EMULATOR_HOST (host:port) published there, unauthenticated.
    event_pubsub_topic: str | None = None
    event_pubsub_endpoint: str | None = None
    event_pubsub_attempts: int = Field(default=4, ge=1, le=10)
    # TDMQ (CMQ edition) topic name; the region defaults to TENCENTCLOUD_REGION (set by SCF).
    # TDMQ_ENDPOINT (host:port means plain HTTP, e.g. the local emulator) overrides the endpoint.
    event_tdmq_topic: str | None = None
    event_tdmq_region: str | None = None
    event_tdmq_endpoint: str | None = None
    event_tdmq_attempts: int = Field(default=4, ge=1, le=10)
    # TDMQ_SECRET_ID / TDMQ_SECRET_KEY / TDMQ_SESSION_TOKEN; unset means the COS credentials
    # (COS_* or the TENCENTCLOUD_* keys SCF injects) are used.
    event_tdmq_secret_id: SecretStr | None = None
    event_tdmq_secret_key: SecretStr | None = None
    event_tdmq_session_token: SecretStr | None = None
    # "hmac" (RESTORE_WEBHOOK_SECRETS) or "iam" (the platform authenticates callers); unset
    # means hmac when secrets are configured and refuse-everything otherwise.
    webhook_auth: Literal["hmac", "iam"] | None = None
    webhook_secrets: tuple[SecretStr, ...] = ()
    webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    # Where published phases are recorded (shared.ledger): memory, or gs://BUCKET/PREFIX.
    ledger: str = "memory"
    ledger_claim_ttl_seconds: float = Field(default=120.0, gt=0, le=86400)
    # Per-request callbacks (shared.callbacks).
    callback_secret: SecretStr | None = None
    callback_allow_http: bool = False
    callback_allowed_hosts: tuple[str, ...] = ()
    callback_attempts: int = Field(default=4, ge=1, le=10)
    # A restore still running this long after the tier's upper bound (a fraction of it) fails.
    recheck_margin: float = Field(default=0.5, ge=0, le=10)
    # Longest delay the re-check transport takes in one hop (TDMQ: 3600); None: unbounded.
    recheck_max_delay_seconds: float | None = Field(default=None, gt=0)
    # Delayed re-checks of initiated COS restores (shared.schedulers): none, cloudtasks or tdmq.
    recheck_scheduler: Literal["none", "cloudtasks", "tdmq"] = "none"
    # Cloud Tasks: the queue (projects/P/locations/L/queues/Q), the re-check function's URL, the
    # service account whose OIDC token Cloud Tasks attaches and its audience (default: the URL).
    recheck_cloudtasks_queue: str | None = None
    recheck_target_url: str | None = None
    recheck_service_account: str | None = None
    recheck_audience: str | None = None
    recheck_cloudtasks_attempts: int = Field(default=4, ge=1, le=10)
    # CLOUD_TASKS_EMULATOR_HOST (host:port or URL): plain HTTP, no credentials.
    cloudtasks_endpoint: str | None = None
    # Bulk jobs (shared.bulk): the providers' restore rate limits, shared by at most
    # bulk_max_instances workers; where chunk messages go; one chunk's time budget.
    cos_restore_rate: float = Field(default=100.0, gt=0, le=100_000)
    gcs_restore_rate: float = Field(default=500.0, gt=0, le=100_000)
    bulk_max_instances: int = Field(default=10, ge=1, le=3000)
    bulk_worker_threads: int = Field(default=8, ge=1, le=64)
    bulk_chunk_seconds: float = Field(default=240.0, gt=0, le=3600)
    bulk_queue: Literal["none", "pubsub", "tdmq"] = "none"
    bulk_pubsub_topic: str | None = None
    bulk_tdmq_topic: str | None = None
    # TDMQ (CMQ edition): SendCmqMsg with DelaySeconds to this queue, whose trigger runs the
    # re-checks. Region: RESTORE_RECHECK_TDMQ_REGION or TENCENTCLOUD_REGION (set by SCF);
    # endpoint (TDMQ_ENDPOINT) and credentials are the TDMQ sink's.
    recheck_tdmq_queue: str | None = None
    recheck_tdmq_region: str | None = None
    recheck_tdmq_attempts: int = Field(default=4, ge=1, le=10)
    # Emulators only (shared.emulated_clock): the re-check schedule follows the emulators'
    # accelerated clock, epoch + (real now - epoch) * factor. Both set, or neither.
    emulated_clock_epoch: float | None = Field(default=None, ge=0)
    emulated_clock_factor: float | None = Field(default=None, gt=0, le=1_000_000)

    @model_validator(mode="after")
    def _emulated_clock_complete(self) -> Settings:
        if (self.emulated_clock_epoch is None) != (self.emulated_clock_factor is None):
            raise ValueError(
                "RESTORE_EMULATED_CLOCK_EPOCH and RESTORE_EMULATED_CLOCK_FACTOR go together"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _tdmq_chains_long_delays(cls, data: object) -> object:
        # With TDMQ the transport maximum is CMQ's: unless configured lower, plan() chains
        # every delay over 3600 s.
        if (
            isinstance(data, dict)
            and str(data.get("recheck_scheduler") or "").lower() == "tdmq"
            and data.get("recheck_max_delay_seconds") is None
        ):
            return {**data, "recheck_max_delay_seconds": TDMQ_MAX_DELAY_SECONDS}
        return data

    @model_validator(mode="after")
    def _tdmq_max_delay(self) -> Settings:
        if (
            self.recheck_scheduler == "tdmq"
            and self.recheck_max_delay_seconds is not None
            and self.recheck_max_delay_seconds > TDMQ_MAX_DELAY_SECONDS
        ):
            raise ValueError(
                "RESTORE_RECHECK_MAX_DELAY_SECONDS must be at most 3600 with "
                "RESTORE_RECHECK_SCHEDULER=tdmq (the longest CMQ DelaySeconds)"
            )
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else None

        raw: dict[str, object] = {
            "cos_allowed_buckets": _csv(get("RESTORE_COS_ALLOWED_BUCKETS")),
            "gcs_allowed_buckets": _csv(get("RESTORE_GCS_ALLOWED_BUCKETS")),
            "gcs_allow_overwrite": (get("RESTORE_GCS_ALLOW_OVERWRITE") or "1").lower()
            in ("1", "true", "yes"),
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
            "event_file": get("RESTORE_EVENT_FILE"),
            "event_http_secret": get("RESTORE_EVENT_HTTP_SECRET"),
            "event_pubsub_topic": get("RESTORE_EVENT_PUBSUB_TOPIC"),
            "event_pubsub_endpoint": get("PUBSUB_EMULATOR_HOST"),
            "event_tdmq_topic": get("RESTORE_EVENT_TDMQ_TOPIC"),
            "event_tdmq_region": get("RESTORE_EVENT_TDMQ_REGION") or get("TENCENTCLOUD_REGION"),
            "event_tdmq_endpoint": get("TDMQ_ENDPOINT"),
            "event_tdmq_secret_id": get("TDMQ_SECRET_ID"),
            "event_tdmq_secret_key": get("TDMQ_SECRET_KEY"),
            "event_tdmq_session_token": get("TDMQ_SESSION_TOKEN"),
            "webhook_auth": get("RESTORE_WEBHOOK_AUTH"),
            "webhook_secrets": _csv(get("RESTORE_WEBHOOK_SECRETS")),
            "ledger": get("RESTORE_LEDGER") or "memory",
            "callback_secret": get("RESTORE_CALLBACK_SECRET"),
            "callback_allow_http": (get("RESTORE_CALLBACK_ALLOW_HTTP") or "").lower()
            in ("1", "true", "yes"),
            "callback_allowed_hosts": _csv(get("RESTORE_CALLBACK_ALLOWED_HOSTS")),
            "recheck_scheduler": (get("RESTORE_RECHECK_SCHEDULER") or "none").lower(),
            "recheck_cloudtasks_queue": get("RESTORE_RECHECK_CLOUDTASKS_QUEUE"),
            "recheck_target_url": get("RESTORE_RECHECK_URL"),
            "recheck_service_account": get("RESTORE_RECHECK_SERVICE_ACCOUNT"),
            "recheck_audience": get("RESTORE_RECHECK_AUDIENCE"),
            "cloudtasks_endpoint": get("CLOUD_TASKS_EMULATOR_HOST"),
            "bulk_queue": (get("RESTORE_BULK_QUEUE") or "none").lower(),
            "bulk_pubsub_topic": get("RESTORE_BULK_PUBSUB_TOPIC"),
            "bulk_tdmq_topic": get("RESTORE_BULK_TDMQ_TOPIC"),
            "recheck_tdmq_queue": get("RESTORE_RECHECK_TDMQ_QUEUE"),
            "recheck_tdmq_region": (
                get("RESTORE_RECHECK_TDMQ_REGION") or get("TENCENTCLOUD_REGION")
            ),
        }
        optional = {
            "provider_timeout_seconds": "RESTORE_PROVIDER_TIMEOUT_SECONDS",
            "deadline_seconds": "RESTORE_DEADLINE_SECONDS",
            "max_attempts": "RESTORE_MAX_ATTEMPTS",
            "retry_base_seconds": "RESTORE_RETRY_BASE_SECONDS",
            "retry_max_seconds": "RESTORE_RETRY_MAX_SECONDS",
            "event_http_attempts": "RESTORE_EVENT_HTTP_ATTEMPTS",
            "event_pubsub_attempts": "RESTORE_EVENT_PUBSUB_ATTEMPTS",
            "event_tdmq_attempts": "RESTORE_EVENT_TDMQ_ATTEMPTS",
            "webhook_tolerance_seconds": "RESTORE_WEBHOOK_TOLERANCE_SECONDS",
            "recheck_cloudtasks_attempts": "RESTORE_RECHECK_CLOUDTASKS_ATTEMPTS",
            "recheck_tdmq_attempts": "RESTORE_RECHECK_TDMQ_ATTEMPTS",
            "ledger_claim_ttl_seconds": "RESTORE_LEDGER_CLAIM_TTL_SECONDS",
            "recheck_margin": "RESTORE_RECHECK_MARGIN",
            "callback_attempts": "RESTORE_CALLBACK_ATTEMPTS",
            "recheck_max_delay_seconds": "RESTORE_RECHECK_MAX_DELAY_SECONDS",
            "cos_restore_rate": "RESTORE_COS_RESTORE_RATE",
            "gcs_restore_rate": "RESTORE_GCS_RESTORE_RATE",
            "bulk_max_instances": "RESTORE_BULK_MAX_INSTANCES",
            "bulk_worker_threads": "RESTORE_BULK_WORKER_THREADS",
            "bulk_chunk_seconds": "RESTORE_BULK_CHUNK_SECONDS",
            "emulated_clock_epoch": "RESTORE_EMULATED_CLOCK_EPOCH",
            "emulated_clock_factor": "RESTORE_EMULATED_CLOCK_FACTOR",
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
