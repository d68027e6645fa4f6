"""restorefn: restore, inspect and wait on object restores from a terminal.

The command line runs the same core as the functions (``shared.service.RestoreService``) in
this process, with the usual credentials: ``COS_SECRET_ID``/``COS_SECRET_KEY`` (or SCF's
``TENCENTCLOUD_SECRETID``/``TENCENTCLOUD_SECRETKEY``) for COS, Application Default Credentials
for GCS, and every other setting from ``Settings.from_env``.

One difference from a deployed function: when ``RESTORE_COS_ALLOWED_BUCKETS`` /
``RESTORE_GCS_ALLOWED_BUCKETS`` is unset, the allowlist is the bucket(s) named on the command
line (or in ``--file``), since a person at a terminal may restore what they name with their own
credentials. When the variable is set it is honoured, and a bucket outside it is refused (4).

Usage::

    restorefn restore --provider cos --bucket B --region R --key K --days N [--tier T]
                      [--version-id V] [--request-id ID] [--context JSON] [--callback-url URL]
    restorefn restore --provider gcs --bucket B --object O [--generation G] [--allow-overwrite]
    restorefn restore --file request.json        # one request or {"requests": [...]}; - = stdin
    restorefn restore ... --wait [--interval S] [--max-interval S] [--timeout S]
    restorefn status  --provider cos --bucket B --region R --key K [--previous-expiry TIME]
    restorefn status  --provider gcs --bucket B --object O
    restorefn wait    ...the flags of restore...  # polls until completed or failed;
                                                  # --days may be left out
    restorefn events  [--follow] [--until-terminal REQUEST_ID] FILE
    restorefn bulk    JOB.json|- [--dry-run] [--instances N] [--rate R]  # see shared.cli_bulk

Global flags (before or after the subcommand): ``--json`` (exactly one JSON document per result
on stdout, one per line), ``--local`` (use the emulators of a running ``make serve``: reads
``build/local/urls.json``, or ``--local-state DIR``), ``--cos-endpoint URL``,
``--gcs-endpoint URL``. ``--provider`` may be left out when the other flags tell (``--key``:
COS, ``--object``: GCS); a COS restore needs ``--days`` (the request schema has no default).

``wait`` polls ``check`` (which never publishes) every ``--interval`` seconds (default 1),
growing by x1.5 up to ``--max-interval`` (default 60), until the restore is completed or failed
or ``--timeout`` seconds (default 3600) have passed. Retryable provider failures do not end a
wait; they are reported if the timeout comes first. Progress goes to stderr: one updating line on
a terminal, plain lines otherwise. ``restore --wait`` waits for every accepted request (initiated
or in_progress) and prints the restore outcome(s) and then the final one(s).

Events of the default ``log`` sink go to stderr (stdout is for results). With
``RESTORE_EVENT_SINK=file`` and ``RESTORE_EVENT_FILE=PATH`` they are appended to PATH, one
CloudEvent JSON per line, which ``restorefn events --follow PATH`` prints as they arrive.

Exit codes (with several results, the first of 4, 2, 1, 5, 3, 0 that applies):

  0  completed or already_restored; a restore accepted (initiated, in_progress) by ``restore``
     without ``--wait``; any ``status`` answer that says where the object stands
  1  failed: the provider refused (not found, access denied, not archived, conflict, ...) or the
     restore failed
  2  bad input: a usage error, or a request that failed validation (every failing field listed)
  3  wait timeout: ``--timeout`` elapsed while the restore was still in progress; for
     ``events --until-terminal``: the file holds no terminal event for that request
  4  configuration error: missing credentials, invalid settings, a bucket outside a configured
     allowlist, ``--local`` without a running ``make serve``
  5  retryable failure (throttled, 5xx, network, timeout, event not delivered): try again later
  130 interrupted (Ctrl-C); ``events --follow`` stops on Ctrl-C with 0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from shared.config import ConfigurationError, Settings
from shared.outcome import ErrorCode, ErrorInfo, Outcome, OutcomeStatus
from shared.records import Secret
from shared.service import RestoreService
from shared.sinks import LogSink, SinkError
from shared.status import ObjectStatus, parse_status_query
from shared.validation import RequestValidationError, parse_request, split_batch

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_WAIT_TIMEOUT = 3
EXIT_CONFIG = 4
EXIT_RETRYABLE = 5
EXIT_INTERRUPTED = 130
# Which code a run with several results ends with: the first that applies.
_PRECEDENCE = (EXIT_CONFIG, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_RETRYABLE, EXIT_WAIT_TIMEOUT)

DEFAULT_INTERVAL = 1.0
DEFAULT_MAX_INTERVAL = 60.0
DEFAULT_TIMEOUT = 3600.0
INTERVAL_GROWTH = 1.5
FOLLOW_POLL_SECONDS = 0.2
LOCAL_STATE = Path("build") / "local"

_WAITING = (OutcomeStatus.INITIATED, OutcomeStatus.IN_PROGRESS)
_DONE = (OutcomeStatus.COMPLETED, OutcomeStatus.ALREADY_RESTORED)

EPILOG = """\
exit codes (with several results, the first of 4, 2, 1, 5, 3, 0 that applies):
  0    completed / already_restored; restore accepted (initiated, in_progress) without --wait;
       a status answer
  1    failed: the provider refused or the restore failed
  2    bad input: usage error or validation rejection (the failing fields are listed)
  3    wait timeout: --timeout elapsed while still in progress (events --until-terminal: no
       terminal event for that request)
  4    configuration error: missing credentials, invalid settings, bucket outside a configured
       allowlist, --local without `make serve`
  5    retryable failure (throttled, 5xx, network, timeout, event lost): try again later
  130  interrupted (Ctrl-C); events --follow ends with 0 on Ctrl-C

environment:
  COS_SECRET_ID, COS_SECRET_KEY, COS_SESSION_TOKEN (or TENCENTCLOUD_SECRETID, ...SECRETKEY,
  ...SESSIONTOKEN)        COS credentials
  GOOGLE_APPLICATION_CREDENTIALS / gcloud auth application-default login   GCS credentials
  COS_ENDPOINT, COS_SCHEME, GCS_ENDPOINT (STORAGE_EMULATOR_HOST), GOOGLE_CLOUD_PROJECT
  RESTORE_COS_ALLOWED_BUCKETS, RESTORE_GCS_ALLOWED_BUCKETS   unset: the buckets named here
  RESTORE_EVENT_SINK (log: events on stderr; file + RESTORE_EVENT_FILE; http; pubsub; tdmq)
  RESTORE_PROVIDER_TIMEOUT_SECONDS, RESTORE_MAX_ATTEMPTS, RESTORE_RETRY_*, ... as for functions
"""


class CliError(Exception):
    """Ends the command with ``code`` after printing ``message`` on stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- exit codes --------------------------------------------------------------------------------
def combine(codes: Iterable[int]) -> int:
    present = set(codes)
    return next((code for code in _PRECEDENCE if code in present), EXIT_OK)


def _error_exit(error: ErrorInfo | None) -> int:
    if error is None:
        return EXIT_FAILED
    if error.code is ErrorCode.VALIDATION_FAILED:
        return EXIT_BAD_INPUT
    if error.code in (ErrorCode.BUCKET_NOT_ALLOWED, ErrorCode.CONFIGURATION):
        return EXIT_CONFIG
    if error.retryable:
        return EXIT_RETRYABLE
    return EXIT_FAILED


def outcome_exit(outcome: Outcome, *, waited: bool = False) -> int:
    """The exit code of one outcome; ``waited``: still running means the wait timed out."""
    if outcome.status in _DONE:
        return EXIT_OK
    if outcome.status in _WAITING:
        return EXIT_WAIT_TIMEOUT if waited else EXIT_OK
    return _error_exit(outcome.error)


def status_exit(status: ObjectStatus) -> int:
    return EXIT_OK if status.error is None else _error_exit(status.error)


# -- output ------------------------------------------------------------------------------------
def _when(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z") if hasattr(value, "isoformat") else str(value)


def _where(provider: str | None, bucket: str | None, key: str | None) -> str:
    if provider is None and bucket is None:
        return ""
    return f"{provider or '?'} {bucket or '?'}/{key or ''}"


def _error_lines(error: ErrorInfo) -> list[str]:
    detail = [
        f"{name}={value}"
        for name, value in (
            ("http_status", error.http_status),
            ("provider_code", error.provider_code),
            ("provider_request_id", error.provider_request_id),
        )
        if value is not None
    ]
    if error.retryable:
        detail.append("retryable")
    suffix = f" ({', '.join(detail)})" if detail else ""
    lines = [f"  error: {error.code.value}: {error.message}{suffix}"]
    lines.extend(f"    - {problem.field}: {problem.reason}" for problem in error.fields or ())
    return lines


def describe_outcome(outcome: Outcome) -> str:
    head = "  ".join(
        part for part in (
            outcome.status.value,
            _where(outcome.provider, outcome.bucket, outcome.key),
            f"request_id={outcome.request_id}",
        ) if part
    )
    lines = [head]
    facts = outcome.model_dump(
        include={"region", "version_id", "generation", "restored_generation", "storage_class",
                 "tier", "days", "expiry_time"},
        exclude_none=True,
    )
    lines.extend(f"  {name}: {_when(value)}" for name, value in facts.items())
    after, before = outcome.expected_completion_after, outcome.expected_completion_before
    if after is not None or before is not None:
        lines.append(f"  expected: between {_when(after)} and {_when(before)}")
    if outcome.error is not None:
        lines.extend(_error_lines(outcome.error))
    return "\n".join(lines)


def describe_status(status: ObjectStatus) -> str:
    where = _where(status.provider, status.bucket, status.key)
    lines = ["  ".join(part for part in (status.state.value, where) if part)]
    facts = status.model_dump(
        exclude={"state", "provider", "bucket", "key", "error", "soft_deleted_generations",
                 "attempts"},
        exclude_none=True,
    )
    lines.extend(f"  {name}: {_when(value)}" for name, value in facts.items())
    for generation in status.soft_deleted_generations or ():
        extra = [f"deleted {_when(generation.soft_delete_time)}"] if generation.soft_delete_time \
            else []
        if generation.hard_delete_time is not None:
            extra.append(f"restorable until {_when(generation.hard_delete_time)}")
        if generation.size is not None:
            extra.append(f"{generation.size} bytes")
        lines.append(f"  soft-deleted generation {generation.generation} ({', '.join(extra)})")
    if status.error is not None:
        lines.extend(_error_lines(status.error))
    return "\n".join(lines)


def describe_event(event: dict[str, Any]) -> str:
    raw = event.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    short = str(event.get("type", "?")).rsplit(".", 1)[-1]
    if data.get("bucket"):
        where = f"{data.get('bucket')}/{data.get('key') or ''}"
    else:
        where = str(event.get("subject") or event.get("source") or "-")
    parts = [str(event.get("time", "-")), f"{short:<16}", where,
             str(data.get("request_id", "-"))]
    error = data.get("error")
    if isinstance(error, dict) and error.get("code"):
        parts.append(f"error={error['code']}")
    return "  ".join(parts)


class Output:
    """Results on stdout: human-readable, or one JSON document per result (``--json``)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def _write(self, text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def outcome(self, outcome: Outcome) -> None:
        if self.as_json:
            self._write(json.dumps(outcome.model_dump(mode="json", exclude_none=True)))
        else:
            self._write(describe_outcome(outcome))

    def status(self, status: ObjectStatus) -> None:
        if self.as_json:
            self._write(json.dumps(status.model_dump(mode="json", exclude_none=True)))
        else:
            self._write(describe_status(status))

    def event(self, event: dict[str, Any]) -> None:
        self._write(json.dumps(event) if self.as_json else describe_event(event))


def _note(message: str) -> None:
    print(f"restorefn: {message}", file=sys.stderr, flush=True)


class Progress:
    """Where a wait stands, on stderr: one line rewritten in place on a terminal, plain lines
    (one per check) otherwise."""

    def __init__(
        self,
        stream: TextIO,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.sleep = sleep
        self.clock = clock
        self._drawn = False

    def pause(self, label: str, started: float, seconds: float) -> None:
        """Sleep ``seconds`` while showing ``label``, the time elapsed and the next check."""
        until = self.clock() + seconds
        if not self.tty:
            elapsed = self.clock() - started
            self.stream.write(
                f"restorefn: {label}; {elapsed:.1f}s elapsed; next check in {seconds:.1f}s\n"
            )
            self.stream.flush()
            self.sleep(seconds)
            return
        while True:
            now = self.clock()
            left = until - now
            self.stream.write(
                f"\r\x1b[K{label} · {_duration(now - started)} elapsed · next check in "
                f"{_duration(max(left, 0.0))}"
            )
            self.stream.flush()
            self._drawn = True
            if left <= 0:
                return
            self.sleep(min(left, 0.5))

    def clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


# -- requests from flags or files --------------------------------------------------------------
# (flag dest, request field) in the order they are written into the payload.
_OBJECT_FIELDS = (
    ("provider", "provider"), ("bucket", "bucket"), ("region", "region"), ("key", "key"),
    ("object", "object"), ("version_id", "version_id"),
)
_RESTORE_FIELDS = (
    ("generation", "generation"), ("days", "days"), ("tier", "tier"),
    ("request_id", "request_id"), ("context", "context"), ("callback_url", "callback_url"),
)
_STATUS_FIELDS = (("previous_expiry", "previous_expiry"),)


def _flag_payload(args: argparse.Namespace, fields: Sequence[tuple[str, str]]) -> dict[str, Any]:
    payload = {
        field: getattr(args, dest)
        for dest, field in fields
        if getattr(args, dest, None) is not None
    }
    if getattr(args, "allow_overwrite", False):
        payload["allow_overwrite"] = True
    return payload


def _read_json(source: str) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(EXIT_BAD_INPUT, f"{source}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(EXIT_BAD_INPUT, f"{source}: not JSON: {exc}") from None


def _payloads(
    args: argparse.Namespace, fields: Sequence[tuple[str, str]], *, batch: bool
) -> list[Any]:
    """The request(s): from ``--file`` (a batch when ``batch``) or from the object flags."""
    flags = _flag_payload(args, fields)
    if args.file is not None:
        if flags:
            raise CliError(EXIT_BAD_INPUT, "--file cannot be combined with object flags "
                                           f"({', '.join(sorted(flags))})")
        payload = _read_json(args.file)
        if not batch:
            return [payload]
        try:
            items = split_batch(payload)
        except RequestValidationError as exc:
            raise CliError(EXIT_BAD_INPUT, _problems_text(exc)) from None
        return [payload] if items is None else items
    if not flags:
        raise CliError(EXIT_BAD_INPUT, "name an object (--provider, --bucket, --region/--key or "
                                       "--object) or pass --file")
    return [flags]


def _problems_text(exc: RequestValidationError) -> str:
    lines = [exc.message]
    lines.extend(f"  - {problem.field}: {problem.reason}" for problem in exc.problems)
    return "\n".join(lines)


def _targets(payloads: Sequence[Any], parse: Callable[[Any], Any]) -> dict[str, set[str]]:
    """provider -> buckets named by the payloads that validate (the others are rejected)."""
    named: dict[str, set[str]] = {}
    for payload in payloads:
        try:
            parsed = parse(payload)
        except RequestValidationError:
            continue
        named.setdefault(parsed.provider, set()).add(parsed.bucket)
    return named


def _stable(payload: Any) -> Any:
    """A request with its request_id fixed, so every check of a wait reports the same id.

    A COS check does not depend on ``days``, which a restore request requires: a wait may leave
    it out (a placeholder is filled in for validation and marked, so it never shows)."""
    try:
        return parse_request(payload).model_dump(mode="json", exclude_none=True)
    except RequestValidationError as exc:
        if not any(p.field == "days" and p.type == "missing" for p in exc.problems):
            return payload  # rejected by the first check, with the field list
    candidate = {**payload, "days": 1}
    try:
        request = parse_request(candidate).model_dump(mode="json", exclude_none=True)
    except RequestValidationError:
        return {**candidate, _NO_DAYS: True}  # the other problems, without days among them
    return {**request, _NO_DAYS: True}


_NO_DAYS = "__restorefn_no_days__"  # a wait payload whose days is only a placeholder


def _unmarked(payload: Any) -> tuple[Any, bool]:
    if isinstance(payload, dict) and payload.get(_NO_DAYS):
        return {name: value for name, value in payload.items() if name != _NO_DAYS}, True
    return payload, False


def _parse_wait(payload: Any) -> Any:
    return parse_request(_unmarked(payload)[0])


def _check(service: RestoreService, payload: Any) -> Outcome:
    request, placeholder = _unmarked(payload)
    outcome = service.check(request, publish=False)
    return outcome.model_copy(update={"days": None}) if placeholder else outcome


# -- settings and the service ------------------------------------------------------------------
def _local_urls(state_dir: str | None) -> dict[str, str]:
    if state_dir is not None:
        candidates = [Path(state_dir)]
    else:
        candidates = [LOCAL_STATE, Path(__file__).resolve().parents[1] / LOCAL_STATE]
    for directory in candidates:
        path = directory / "urls.json"
        try:
            urls = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            raise CliError(EXIT_CONFIG, f"{path}: unreadable ({exc})") from None
        if not isinstance(urls, dict) or not all(
            isinstance(urls.get(name), str) for name in ("cos_emulator", "gcs_emulator")
        ):
            raise CliError(EXIT_CONFIG, f"{path}: no cos_emulator and gcs_emulator URLs")
        return {str(name): str(url) for name, url in urls.items()}
    where = " or ".join(str(directory / "urls.json") for directory in candidates)
    raise CliError(EXIT_CONFIG, f"--local: no {where}: start the local stack with `make serve` "
                                "(or pass --local-state DIR)")


def _scheme(url: str) -> str:
    scheme = urlsplit(url).scheme
    return scheme if scheme in ("http", "https") else "http"


def build_settings(args: argparse.Namespace, named: dict[str, set[str]]) -> Settings:
    """Settings.from_env, then --local / --*-endpoint, then the allowlist default."""
    try:
        settings = Settings.from_env()
    except ConfigurationError as exc:
        raise CliError(EXIT_CONFIG, str(exc)) from None
    cos: dict[str, Any] = {}
    gcs: dict[str, Any] = {}
    if args.local or args.local_state is not None:
        from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY

        urls = _local_urls(args.local_state)
        cos.update(endpoint=urls["cos_emulator"], scheme=_scheme(urls["cos_emulator"]),
                   secret_id=Secret(DEFAULT_SECRET_ID),
                   secret_key=Secret(DEFAULT_SECRET_KEY), session_token=None)
        gcs.update(endpoint=urls["gcs_emulator"])
    if args.cos_endpoint:
        cos.update(endpoint=args.cos_endpoint, scheme=_scheme(args.cos_endpoint))
    if args.gcs_endpoint:
        gcs.update(endpoint=args.gcs_endpoint)
    update: dict[str, Any] = {}
    if cos:
        update["cos"] = settings.cos.model_copy(update=cos)
    if gcs:
        update["gcs"] = settings.gcs.model_copy(update=gcs)
    # A person at a terminal may restore what they name: unset allowlists become those buckets
    # (glob characters never reach an allowlist; such names fail validation anyway).
    for provider, field in (("cos", "cos_allowed_buckets"), ("gcs", "gcs_allowed_buckets")):
        if not getattr(settings, field):
            update[field] = tuple(sorted(
                bucket for bucket in named.get(provider, ())
                if not any(char in bucket for char in "*?[")
            ))
    settings = settings.model_copy(update=update)
    if "cos" in named and (settings.cos.secret_id is None or settings.cos.secret_key is None):
        raise CliError(EXIT_CONFIG, "no COS credentials: set COS_SECRET_ID and COS_SECRET_KEY "
                                    "(or TENCENTCLOUD_SECRETID and TENCENTCLOUD_SECRETKEY), or "
                                    "use --local")
    return settings


def build_service(settings: Settings) -> RestoreService:
    # The log sink writes to stderr here: stdout carries the results (--json).
    sink = LogSink(sys.stderr) if settings.event_sink == "log" else None
    try:
        return RestoreService(settings, sink=sink)
    except ConfigurationError as exc:
        raise CliError(EXIT_CONFIG, str(exc)) from None


def _credentials_problem(exc: Exception) -> str | None:
    """A message when ``exc`` says Google's Application Default Credentials are missing."""
    module = sys.modules.get("google.auth.exceptions")
    if module is not None and isinstance(exc, module.DefaultCredentialsError):
        return ("no Google credentials (Application Default Credentials): run `gcloud auth "
                "application-default login` or set GOOGLE_APPLICATION_CREDENTIALS, or use "
                f"--local / --gcs-endpoint ({exc})")
    return None


# -- waiting -----------------------------------------------------------------------------------
def _still_running(outcome: Outcome) -> bool:
    return outcome.status in _WAITING or outcome.retryable


def _label(outcomes: Sequence[Outcome | None], pending: set[int]) -> str:
    def one(outcome: Outcome | None) -> str:
        if outcome is None:
            return "?"
        if outcome.retryable and outcome.error is not None:
            return f"retrying after {outcome.error.code.value}"
        return outcome.status.value

    if len(outcomes) == 1:
        return one(outcomes[0])
    states = sorted({one(outcomes[index]) for index in pending})
    done = len(outcomes) - len(pending)
    return f"{len(pending)} waiting ({', '.join(states)}), {done} done"


def wait_for(
    service: RestoreService,
    payloads: Sequence[Any],
    *,
    interval: float,
    max_interval: float,
    timeout: float,
    progress: Progress,
) -> list[tuple[Outcome, int]]:
    """Poll ``check`` (never publishing) until every request is completed or failed, or the
    timeout passes; each final outcome with its exit code."""
    started = progress.clock()
    deadline = started + timeout
    last: list[Outcome | None] = [None] * len(payloads)
    pending = set(range(len(payloads)))
    try:
        while True:
            for index in sorted(pending):
                outcome = _check(service, payloads[index])
                last[index] = outcome
                if not _still_running(outcome):
                    pending.discard(index)
            now = progress.clock()
            if not pending or now >= deadline:
                break
            progress.pause(_label(last, pending), started, min(interval, deadline - now))
            interval = min(interval * INTERVAL_GROWTH, max_interval)
    finally:
        progress.clear()
    # Still running at the deadline: in_progress is a wait timeout (3), a retryable failure 5.
    return [(final, outcome_exit(final, waited=True)) for final in last if final is not None]


def _wait_options(args: argparse.Namespace) -> dict[str, float]:
    return {
        "interval": args.interval,
        "max_interval": max(args.max_interval, args.interval),
        "timeout": args.timeout,
    }


# -- commands ----------------------------------------------------------------------------------
def cmd_restore(args: argparse.Namespace, out: Output) -> int:
    payloads = _payloads(args, _OBJECT_FIELDS + _RESTORE_FIELDS, batch=True)
    service = build_service(build_settings(args, _targets(payloads, parse_request)))
    outcomes = [service.restore(payload) for payload in payloads]
    for outcome in outcomes:
        out.outcome(outcome)
    if not args.wait:
        return combine(outcome_exit(outcome) for outcome in outcomes)
    codes = {index: outcome_exit(outcome) for index, outcome in enumerate(outcomes)}
    accepted = [index for index, outcome in enumerate(outcomes) if outcome.status in _WAITING]
    if accepted:
        checks = [
            {**_stable(payloads[index]), "request_id": outcomes[index].request_id}
            for index in accepted
        ]
        finals = wait_for(service, checks, progress=Progress(sys.stderr), **_wait_options(args))
        for index, (outcome, code) in zip(accepted, finals, strict=True):
            out.outcome(outcome)
            codes[index] = code
    return combine(codes.values())


def cmd_wait(args: argparse.Namespace, out: Output) -> int:
    payloads = [_stable(payload)
                for payload in _payloads(args, _OBJECT_FIELDS + _RESTORE_FIELDS, batch=True)]
    service = build_service(build_settings(args, _targets(payloads, _parse_wait)))
    finals = wait_for(service, payloads, progress=Progress(sys.stderr), **_wait_options(args))
    for outcome, _ in finals:
        out.outcome(outcome)
    return combine(code for _, code in finals)


def cmd_status(args: argparse.Namespace, out: Output) -> int:
    payloads = _payloads(args, _OBJECT_FIELDS + _STATUS_FIELDS, batch=False)
    service = build_service(build_settings(args, _targets(payloads, parse_status_query)))
    status = service.status(payloads[0])
    out.status(status)
    return status_exit(status)


def _event_lines(path: Path, *, follow: bool, poll: float) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of a JSONL file; with ``follow``, forever, as the file grows (a
    file that shrinks was truncated or replaced: read again from its start)."""
    position, pending, number = 0, b"", 0
    while True:
        chunk = b""
        try:
            with path.open("rb") as handle:
                if os.fstat(handle.fileno()).st_size < position:
                    position, pending = 0, b""
                handle.seek(position)
                chunk = handle.read()
        except FileNotFoundError:
            if not follow:
                raise CliError(EXIT_BAD_INPUT, f"{path}: no such file") from None
        except OSError as exc:
            raise CliError(EXIT_BAD_INPUT, f"{path}: {exc.strerror}") from None
        position += len(chunk)
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            number += 1
            yield number, line
        if not follow:
            if pending.strip():
                yield number + 1, pending
            return
        time.sleep(poll)


def _terminal_exit(event: dict[str, Any]) -> int | None:
    """The exit code a terminal event stands for; None while the restore is still running."""
    data = event.get("data")
    if not isinstance(data, dict):
        return None
    try:
        status = OutcomeStatus(data.get("outcome"))
        error = ErrorInfo.model_validate(data["error"]) if data.get("error") else None
    except (ValueError, TypeError, AttributeError):
        return None
    if not status.terminal:
        return None
    return EXIT_OK if status in _DONE else _error_exit(error)


def cmd_events(args: argparse.Namespace, out: Output) -> int:
    try:
        for number, line in _event_lines(Path(args.path), follow=args.follow,
                                         poll=FOLLOW_POLL_SECONDS):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                _note(f"{args.path}:{number}: not a JSON event; skipped")
                continue
            out.event(event)
            data = event.get("data")
            if args.until_terminal is not None and isinstance(data, dict) \
                    and data.get("request_id") == args.until_terminal:
                code = _terminal_exit(event)
                if code is not None:
                    return code
    except KeyboardInterrupt:
        return EXIT_OK  # the way to stop following
    if args.until_terminal is not None:
        _note(f"no terminal event for request {args.until_terminal} in {args.path}")
        return EXIT_WAIT_TIMEOUT
    return EXIT_OK


# -- argument parsing --------------------------------------------------------------------------
def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None


def _global_options(subcommand: bool) -> argparse.ArgumentParser:
    """The global flags; on subcommands they default to SUPPRESS so they can come after the
    subcommand without overwriting what came before it."""
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if subcommand else value

    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("global options")
    group.add_argument("--json", action="store_true", default=default(False),
                       help="machine output: one JSON document per result on stdout")
    group.add_argument("--local", action="store_true", default=default(False),
                       help="use the emulators of a running `make serve` (build/local/urls.json)")
    group.add_argument("--local-state", metavar="DIR", default=default(None),
                       help="where `make serve` wrote urls.json (implies --local)")
    group.add_argument("--cos-endpoint", metavar="URL", default=default(None),
                       help="COS endpoint, e.g. http://127.0.0.1:9000 (overrides COS_ENDPOINT)")
    group.add_argument("--gcs-endpoint", metavar="URL", default=default(None),
                       help="GCS endpoint, e.g. http://127.0.0.1:9023 (anonymous credentials)")
    return options


def _object_options(parser: argparse.ArgumentParser, *, restore: bool) -> None:
    group = parser.add_argument_group("the object")
    group.add_argument("--provider", choices=("cos", "gcs"),
                       help="inferred from the other flags when absent")
    group.add_argument("--bucket", help="COS BucketName-APPID or GCS bucket")
    group.add_argument("--region", help="COS region, e.g. ap-guangzhou")
    group.add_argument("--key", help="COS object key")
    group.add_argument("--object", help="GCS object name")
    group.add_argument("--version-id", help="COS version id")
    group.add_argument("--file", metavar="FILE",
                       help="the request as JSON instead of flags"
                            + (" (a batch {\"requests\": [...]} too)" if restore else "")
                            + "; - for stdin")
    if not restore:
        group.add_argument("--previous-expiry", metavar="TIME",
                           help="COS: expiry of an earlier restore (tells restore_expired)")
        return
    request = parser.add_argument_group("the restore")
    request.add_argument("--days", type=int, help="COS: days the restored copy stays readable")
    request.add_argument("--tier", help="COS: Expedited, Standard (default) or Bulk")
    request.add_argument("--generation", help="GCS: the soft-deleted generation (default newest)")
    request.add_argument("--allow-overwrite", action="store_true",
                         help="GCS: may replace a live object")
    request.add_argument("--request-id", help="idempotency key (generated when absent)")
    request.add_argument("--context", type=_json_value, metavar="JSON",
                         help="a JSON object echoed in every event")
    request.add_argument("--callback-url", metavar="URL", help="also POST the events here")


def _wait_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("waiting")
    group.add_argument("--interval", type=_positive, default=DEFAULT_INTERVAL, metavar="S",
                       help="first pause between checks, growing x1.5 (default 1)")
    group.add_argument("--max-interval", type=_positive, default=DEFAULT_MAX_INTERVAL,
                       metavar="S", help="longest pause between checks (default 60)")
    group.add_argument("--timeout", type=_non_negative, default=DEFAULT_TIMEOUT, metavar="S",
                       help="give up (exit 3) after this many seconds (default 3600)")


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="restorefn",
        description="Restore archived Tencent COS objects and soft-deleted Google Cloud Storage "
                    "objects, look at where they stand, wait for restores and follow events.",
        epilog=EPILOG, formatter_class=formatter, parents=[_global_options(False)],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub = [_global_options(True)]

    restore = commands.add_parser(
        "restore", parents=sub, epilog=EPILOG, formatter_class=formatter,
        help="restore an object (or a batch); prints the outcome(s)",
        description="Restore one object named by flags, or the request(s) in --file.",
    )
    _object_options(restore, restore=True)
    restore.add_argument("--wait", action="store_true",
                         help="then wait until the restore is completed or failed")
    _wait_arguments(restore)
    restore.set_defaults(handler=cmd_restore)

    status = commands.add_parser(
        "status", parents=sub, epilog=EPILOG, formatter_class=formatter,
        help="where an object stands (archived, restoring, restored, soft_deleted, ...)",
        description="Print the state of one object; never restores and never publishes.",
    )
    _object_options(status, restore=False)
    status.set_defaults(handler=cmd_status)

    wait = commands.add_parser(
        "wait", parents=sub, epilog=EPILOG, formatter_class=formatter,
        help="block until a restore is completed or failed",
        description="Poll the restore of the named object(s) until it is completed or failed, "
                    "or --timeout passes (exit 3). Never starts a restore.",
    )
    _object_options(wait, restore=True)
    _wait_arguments(wait)
    wait.set_defaults(handler=cmd_wait)

    events = commands.add_parser(
        "events", parents=sub, epilog=EPILOG, formatter_class=formatter,
        help="print the CloudEvents of a JSONL file (RESTORE_EVENT_SINK=file)",
        description="Print each event of a JSONL file of CloudEvents as one summary line (time, "
                    "status, bucket/key, request id), or as JSON with --json.",
    )
    events.add_argument("path", metavar="FILE", help="the RESTORE_EVENT_FILE of the file sink")
    events.add_argument("--follow", "-f", action="store_true",
                        help="keep reading as the file grows, until Ctrl-C")
    events.add_argument("--until-terminal", metavar="REQUEST_ID",
                        help="stop after that request's terminal event; exit with its code")
    events.set_defaults(handler=cmd_events)

    from shared.cli_bulk import add_bulk_parser  # imports this module: only once it is loaded

    add_bulk_parser(commands, sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    out = Output(args.json)
    handler: Callable[[argparse.Namespace, Output], int] = args.handler
    try:
        return handler(args, out)
    except CliError as exc:
        _note(exc.message)
        return exc.code
    except ConfigurationError as exc:
        _note(str(exc))
        return EXIT_CONFIG
    except SinkError as exc:
        _note(f"the event was not delivered ({exc}); try again later")
        return EXIT_RETRYABLE
    except KeyboardInterrupt:
        _note("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, without a second error at exit.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        problem = _credentials_problem(exc)
        if problem is None:
            raise
        _note(problem)
        return EXIT_CONFIG


if __name__ == "__main__":
    raise SystemExit(main())
