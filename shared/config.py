"""Configuration, read once from the environment.

Every knob has an environment variable (listed in the README) so both platforms configure the
package the same way. Secrets are ``Secret``: they print as ``**********`` wherever a settings
object ends up in a log line or an error.

The settings are frozen dataclasses checked in ``__post_init__`` (each field's metadata holds
its check), not pydantic models: they are built on every cold start, and pydantic's import
alone costs more than our whole cold-start budget (``shared.records``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import field, fields
from typing import Any, Literal

from shared.records import Record, Secret, SecretValue, record

Check = Callable[[Any], Any]


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


class ConfigurationError(RuntimeError):
    """The deployment is misconfigured; the message says which variable to set."""


# TDMQ CMQ: SendCmqMsg's DelaySeconds is at most 3600 (and at most the queue's
# MsgRetentionSeconds); longer re-check delays are chained (shared.recheck.plan).
TDMQ_MAX_DELAY_SECONDS = 3600.0


# -- field checks: each returns the value to keep or raises ValueError(reason) -----------------
def _setting(default: Any, check: Check | None = None) -> Any:
    return field(default=default, metadata={"check": check} if check else {})


def _number(kind: type[int] | type[float], default: float | None, *, ge: float | None = None,
            gt: float | None = None, le: float | None = None) -> Any:
    def check(value: Any) -> Any:
        if value is None and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"must be {'an integer' if kind is int else 'a number'}")
        try:
            number = float(value) if kind is float else int(value)
        except ValueError:
            raise ValueError(
                f"must be {'an integer' if kind is int else 'a number'}") from None
        if isinstance(value, float) and kind is int and not value.is_integer():
            raise ValueError("must be an integer")
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        if ge is not None and number < ge:
            raise ValueError(f"must be greater than or equal to {ge:g}")
        if gt is not None and number <= gt:
            raise ValueError(f"must be greater than {gt:g}")
        if le is not None and number > le:
            raise ValueError(f"must be less than or equal to {le:g}")
        return number

    return _setting(default, check)


def _choice(default: str | None, *options: str) -> Any:
    def check(value: Any) -> Any:
        if value is None and default is None:
            return None
        if value not in options:
            raise ValueError("must be one of " + ", ".join(repr(o) for o in options))
        return value

    return _setting(default, check)


def _flag(default: bool) -> Any:
    def check(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError("must be true or false")

    return _setting(default, check)


def _as_secret(value: Any) -> SecretValue:
    if isinstance(value, str):
        return Secret(value)
    if callable(getattr(value, "get_secret_value", None)):
        return value  # type: ignore[no-any-return]
    raise ValueError("must be a string")


def _secret() -> Any:
    return _setting(None, lambda value: None if value is None else _as_secret(value))


def _secrets() -> Any:
    def check(value: Any) -> tuple[SecretValue, ...]:
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise ValueError("must be a list of strings")
        return tuple(_as_secret(item) for item in value)

    return _setting((), check)


def _names() -> Any:
    def check(value: Any) -> tuple[str, ...]:
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise ValueError("must be a list of strings")
        items = tuple(value)
        if not all(isinstance(item, str) for item in items):
            raise ValueError("must be a list of strings")
        return items

    return _setting((), check)


def _text_value(value: Any) -> Any:
    if value is not None and not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _text() -> Any:
    return _setting(None, _text_value)


def _nested(kind: type[Record]) -> Any:
    def check(value: Any) -> Any:
        if isinstance(value, kind):
            return value
        if isinstance(value, Mapping):
            return kind(**value)
        raise ValueError("must be an object")

    return field(default_factory=kind, metadata={"check": check})


class _Checked(Record):
    """Runs every field's check once the dataclass is built; errors name fields, never values."""

    def __post_init__(self) -> None:
        problems = []
        for item in fields(self):  # type: ignore[arg-type]
            check = item.metadata.get("check")
            if check is None:
                continue
            try:
                object.__setattr__(self, item.name, check(getattr(self, item.name)))
            except ConfigurationError as exc:
                problems.append(f"{item.name}.{str(exc).removeprefix(_PREFIX)}")
            except (ValueError, TypeError) as exc:
                problems.append(f"{item.name}: {exc}")
        if not problems:
            try:
                self._check_together()
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ConfigurationError(_PREFIX + "; ".join(problems))

    def _check_together(self) -> None:
        """Rules across fields; raise ValueError."""


_PREFIX = "invalid configuration: "


@record
class CosSettings(_Checked):
    secret_id: SecretValue | None = _secret()
    secret_key: SecretValue | None = _secret()
    session_token: SecretValue | None = _secret()
    # e.g. http://127.0.0.1:9000 for the local emulator; None means the real COS endpoint.
    endpoint: str | None = _text()
    scheme: Literal["http", "https"] = _choice("https", "http", "https")
    pool_size: int = _number(int, 10, ge=1, le=256)


@record
class GcsSettings(_Checked):
    project: str | None = _text()
    # e.g. http://127.0.0.1:9023 for the local emulator (anonymous credentials then).
    endpoint: str | None = _text()


@record
class Settings(_Checked):
    cos_allowed_buckets: tuple[str, ...] = _names()
    gcs_allowed_buckets: tuple[str, ...] = _names()
    # Whether a GCS restore may replace a live object (allow_overwrite). Off, such requests are
    # refused before the provider call, so a deployment without storage.objects.delete gets a
    # clear 422 rather than the provider's 403 (deploy.sh grants delete only when this is on).
    gcs_allow_overwrite: bool = _flag(True)
    cos: CosSettings = _nested(CosSettings)
    gcs: GcsSettings = _nested(GcsSettings)
    # One provider call may take this long; the whole request (retries included) `deadline`.
    provider_timeout_seconds: float = _number(float, 10.0, gt=0, le=300)
    deadline_seconds: float = _number(float, 45.0, gt=0, le=3600)
    max_attempts: int = _number(int, 3, ge=1, le=10)
    retry_base_seconds: float = _number(float, 0.5, ge=0, le=60)
    retry_max_seconds: float = _number(float, 8.0, ge=0, le=300)
    event_sink: Literal["log", "http", "pubsub", "tdmq", "file"] = (
        _choice("log", "log", "http", "pubsub", "tdmq", "file"))
    # RESTORE_EVENT_SINK=file: one CloudEvent JSON per line appended here (local use, the CLI).
    event_file: str | None = _text()
    event_http_url: str | None = _text()
    event_http_secret: SecretValue | None = _secret()
    event_http_attempts: int = _number(int, 4, ge=1, le=10)
    # projects/P/topics/T; with PUBSUB_EMULATOR_HOST (host:port) published there, unauthenticated.
    event_pubsub_topic: str | None = _text()
    event_pubsub_endpoint: str | None = _text()
    event_pubsub_attempts: int = _number(int, 4, ge=1, le=10)
    # TDMQ (CMQ edition) topic name; the region defaults to TENCENTCLOUD_REGION (set by SCF).
    # TDMQ_ENDPOINT (host:port means plain HTTP, e.g. the local emulator) overrides the endpoint.
    event_tdmq_topic: str | None = _text()
    event_tdmq_region: str | None = _text()
    event_tdmq_endpoint: str | None = _text()
    event_tdmq_attempts: int = _number(int, 4, ge=1, le=10)
    # TDMQ_SECRET_ID / TDMQ_SECRET_KEY / TDMQ_SESSION_TOKEN; unset means the COS credentials
    # (COS_* or the TENCENTCLOUD_* keys SCF injects) are used.
    event_tdmq_secret_id: SecretValue | None = _secret()
    event_tdmq_secret_key: SecretValue | None = _secret()
    event_tdmq_session_token: SecretValue | None = _secret()
    # "hmac" (RESTORE_WEBHOOK_SECRETS) or "iam" (the platform authenticates callers); unset
    # means hmac when secrets are configured and refuse-everything otherwise.
    webhook_auth: Literal["hmac", "iam"] | None = _choice(None, "hmac", "iam")
    webhook_secrets: tuple[SecretValue, ...] = _secrets()
    webhook_tolerance_seconds: int = _number(int, 300, ge=1, le=3600)
    # Where published phases are recorded (shared.ledger): memory, or gs://BUCKET/PREFIX.
    ledger: str = _setting("memory", _text_value)
    ledger_claim_ttl_seconds: float = _number(float, 120.0, gt=0, le=86400)
    # Per-request callbacks (shared.callbacks).
    callback_secret: SecretValue | None = _secret()
    callback_allow_http: bool = _flag(False)
    callback_allowed_hosts: tuple[str, ...] = _names()
    callback_attempts: int = _number(int, 4, ge=1, le=10)
    # A restore still running this long after the tier's upper bound (a fraction of it) fails.
    recheck_margin: float = _number(float, 0.5, ge=0, le=10)
    # Longest delay the re-check transport takes in one hop (TDMQ: 3600); None: unbounded.
    recheck_max_delay_seconds: float | None = _number(float, None, gt=0)
    # Delayed re-checks of initiated COS restores (shared.schedulers): none, cloudtasks or tdmq.
    recheck_scheduler: Literal["none", "cloudtasks", "tdmq"] = (
        _choice("none", "none", "cloudtasks", "tdmq"))
    # Cloud Tasks: the queue (projects/P/locations/L/queues/Q), the re-check function's URL, the
    # service account whose OIDC token Cloud Tasks attaches and its audience (default: the URL).
    recheck_cloudtasks_queue: str | None = _text()
    recheck_target_url: str | None = _text()
    recheck_service_account: str | None = _text()
    recheck_audience: str | None = _text()
    recheck_cloudtasks_attempts: int = _number(int, 4, ge=1, le=10)
    # CLOUD_TASKS_EMULATOR_HOST (host:port or URL): plain HTTP, no credentials.
    cloudtasks_endpoint: str | None = _text()
    # Bulk jobs (shared.bulk): the providers' restore rate limits, shared by at most
    # bulk_max_instances workers; where chunk messages go; one chunk's time budget.
    cos_restore_rate: float = _number(float, 100.0, gt=0, le=100_000)
    gcs_restore_rate: float = _number(float, 500.0, gt=0, le=100_000)
    bulk_max_instances: int = _number(int, 10, ge=1, le=3000)
    bulk_worker_threads: int = _number(int, 8, ge=1, le=64)
    bulk_chunk_seconds: float = _number(float, 240.0, gt=0, le=3600)
    bulk_queue: Literal["none", "pubsub", "tdmq"] = _choice("none", "none", "pubsub", "tdmq")
    bulk_pubsub_topic: str | None = _text()
    bulk_tdmq_topic: str | None = _text()
    # TDMQ (CMQ edition): SendCmqMsg with DelaySeconds to this queue, whose trigger runs the
    # re-checks. Region: RESTORE_RECHECK_TDMQ_REGION or TENCENTCLOUD_REGION (set by SCF);
    # endpoint (TDMQ_ENDPOINT) and credentials are the TDMQ sink's.
    recheck_tdmq_queue: str | None = _text()
    recheck_tdmq_region: str | None = _text()
    recheck_tdmq_attempts: int = _number(int, 4, ge=1, le=10)
    # Emulators only (shared.emulated_clock): the re-check schedule follows the emulators'
    # accelerated clock, epoch + (real now - epoch) * factor. Both set, or neither.
    emulated_clock_epoch: float | None = _number(float, None, ge=0)
    emulated_clock_factor: float | None = _number(float, None, gt=0, le=1_000_000)

    def __post_init__(self) -> None:
        # With TDMQ the transport maximum is CMQ's: unless configured lower, plan() chains
        # every delay over 3600 s.
        if self.recheck_scheduler == "tdmq" and self.recheck_max_delay_seconds is None:
            object.__setattr__(self, "recheck_max_delay_seconds", TDMQ_MAX_DELAY_SECONDS)
        super().__post_init__()

    def _check_together(self) -> None:
        if (self.emulated_clock_epoch is None) != (self.emulated_clock_factor is None):
            raise ValueError(
                "RESTORE_EMULATED_CLOCK_EPOCH and RESTORE_EMULATED_CLOCK_FACTOR go together"
            )
        if (
            self.recheck_scheduler == "tdmq"
            and self.recheck_max_delay_seconds is not None
            and self.recheck_max_delay_seconds > TDMQ_MAX_DELAY_SECONDS
        ):
            raise ValueError(
                "RESTORE_RECHECK_MAX_DELAY_SECONDS must be at most 3600 with "
                "RESTORE_RECHECK_SCHEDULER=tdmq (the longest CMQ DelaySeconds)"
            )

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
        raw.update({name: get(var) for name, var in optional.items() if get(var) is not None})
        return cls(**raw)  # type: ignore[arg-type]
