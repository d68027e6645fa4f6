"""The re-check endpoint's HTTP contract (Cloud Tasks -> ``restore_recheck``), framework-free.

The body is one ``RecheckMessage`` (``shared.recheck``) as the scheduler posted it; the handler
runs it (``RestoreService.recheck``) and says, through the status code, whether Cloud Tasks must
deliver it again. Cloud Tasks treats every 2xx as done and retries everything else with the
queue's backoff.

Authentication uses the webhook's settings:

- ``RESTORE_WEBHOOK_AUTH=iam``: the platform authenticated the caller (the function is deployed
  with ``--no-allow-unauthenticated`` and Cloud Tasks presents an OIDC token); nothing more here.
- HMAC (``RESTORE_WEBHOOK_SECRETS``): additionally the body must carry the task signature the
  scheduler adds (``shared.task_auth``); missing or wrong: 401.
- neither: 503 ``not_configured``, so tasks wait for a fixed deployment.

Answers (JSON, never a stack trace):

- 200 ``{"result": "done"}``: the look ended the restore's tracking and its event is out (sent
  now, or earlier by the storage trigger or another copy): ``completed`` with the expiry, or
  ``failed`` (timed out, object gone, ...); ``outcome`` and ``event_id`` included.
- 200 ``{"result": "rescheduled"}``: still restoring (or an early hop of a chained delay): the
  next re-check is scheduled (``next_check``, ``delay_seconds``).
- 200 ``{"result": "duplicate"}``: the request is done already, or this very check ran.
- 503 + ``Retry-After``: the provider, the ledger, the scheduler or the event sink failed in a way
  that may pass, or another delivery of the same check holds its claim: Cloud Tasks delivers the
  task again.
- 401: the task signature is missing or wrong. Cloud Tasks retries it, which is what a secret
  rotated away too early needs (put the old secret back and the queued tasks go through).
- 400 (not JSON), 405, 413, 415, 422 (not a ``RecheckMessage``: the field list, never values).

A malformed body can never succeed, and Cloud Tasks would retry it for as long as the queue
allows (100 attempts by default, backoff up to an hour). So when the request was delivered by
Cloud Tasks (it carries ``X-CloudTasks-TaskName``) and its body is malformed, the answer is
200 ``{"result": "rejected", "acknowledged": true, "error": ...}``: the task is dropped and the
entry point logs the rejection at ERROR. Called directly (a person, a test), the same error comes
back with its 4xx status. The header proves nothing (anyone may send it): it only decides how a
body that cannot succeed is answered, never whether a re-check runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared import auth, task_auth
from shared.bulk.kinds import is_bulk_poll
from shared.events import event_id
from shared.recheck import RecheckMessage, parse_recheck
from shared.service import RestoreService
from shared.validation import RequestValidationError, problems_from
from shared.webhook import (
    JSON_HEADERS,
    RETRY_AFTER_SECONDS,
    HttpAnswer,
    HttpRequest,
    error_answer,
    json_body,
    too_large,
)

CLOUD_TASKS_TASK_HEADER = "X-CloudTasks-TaskName"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def from_cloud_tasks(headers: Mapping[str, str]) -> bool:
    """Whether Cloud Tasks delivered the request (it names the task in a header)."""
    return bool(_header(headers, CLOUD_TASKS_TASK_HEADER))


class RecheckHandler:
    """Authenticate, parse, run one re-check, answer. One instance per process, reused."""

    def __init__(self, service: RestoreService) -> None:
        self._service = service

    def handle(self, request: HttpRequest) -> HttpAnswer:
        answer = self._handle(request)
        if 400 <= answer.status < 500 and answer.status != 401 and from_cloud_tasks(
            request.headers
        ):
            # Permanently unusable: acknowledge, so Cloud Tasks does not retry it for days.
            body = {"result": "rejected", "acknowledged": True, **answer.body}
            return HttpAnswer(200, body, dict(JSON_HEADERS))
        return answer

    def _handle(self, request: HttpRequest) -> HttpAnswer:
        if request.method.upper() != "POST":
            answer = error_answer(405, "method_not_allowed", "POST a re-check task (JSON)")
            answer.headers["Allow"] = "POST"
            return answer
        if (oversized := too_large(request)) is not None:
            return oversized
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        payload = json_body(request)
        if isinstance(payload, HttpAnswer):
            return payload
        if is_bulk_poll(payload):  # a GCS bulkRestore operation's delayed poll (shared.bulk)
            return self._poll(payload)
        try:
            message = parse_recheck(payload)
        except RequestValidationError as problem:
            return HttpAnswer(422, {"error": problem.to_dict()})
        return self._run(message)

    def _authenticate(self, request: HttpRequest) -> HttpAnswer | None:
        settings = self._service.settings
        mode = settings.webhook_auth
        if mode == "iam":
            return None  # the platform verified the caller's OIDC token
        if mode == "hmac" or (mode is None and settings.webhook_secrets):
            if not settings.webhook_secrets:
                return error_answer(
                    503, "not_configured",
                    "HMAC authentication is selected but RESTORE_WEBHOOK_SECRETS is empty",
                    retry_after=RETRY_AFTER_SECONDS,
                )
            try:
                task_auth.verify_task(settings.webhook_secrets, request.headers, request.body)
            except auth.AuthenticationError as exc:
                return error_answer(401, "unauthenticated", str(exc))
            return None
        return error_answer(
            503, "not_configured",
            "re-check authentication is not configured: set RESTORE_WEBHOOK_SECRETS (signed "
            "tasks) or RESTORE_WEBHOOK_AUTH=iam when the platform authenticates callers",
            retry_after=RETRY_AFTER_SECONDS,
        )

    def _poll(self, payload: Any) -> HttpAnswer:
        from pydantic import ValidationError

        from shared.bulk.service import bulk_for

        try:
            progress = bulk_for(self._service).handle_poll(payload)
        except ValidationError as exc:
            problem = RequestValidationError(problems_from(exc),
                                             message="the body is not an operation poll")
            return HttpAnswer(422, {"error": problem.to_dict()})
        except Exception as exc:  # provider, report store, scheduler: deliver it again
            return error_answer(503, "retry_later",
                                f"the operation poll could not finish ({type(exc).__name__})",
                                retry_after=RETRY_AFTER_SECONDS)
        return HttpAnswer(200, {"result": "polled",
                                "progress": progress.model_dump(mode="json")})

    def _run(self, message: RecheckMessage) -> HttpAnswer:
        result = self._service.recheck(message)
        about: dict[str, Any] = {"request_id": message.request_id, "check": message.check}
        if result.retry:
            return error_answer(
                503, "retry_later",
                "the re-check could not finish (provider, ledger, scheduler or event sink "
                "unavailable, or another delivery of this check is running); deliver it again",
                retry_after=RETRY_AFTER_SECONDS, **about,
            )
        body: dict[str, Any] = dict(about)
        if result.duplicate:
            body["result"] = "duplicate"
        elif result.scheduled is not None:
            body.update(result="rescheduled", next_check=result.scheduled.check,
                        delay_seconds=result.delay_seconds)
        elif result.outcomes:
            body["result"] = "done"
        else:
            body["result"] = "ignored"
        if result.outcomes:
            outcome = result.outcomes[-1]
            body["outcome"] = outcome.model_dump(mode="json", exclude_none=True)
            if body["result"] == "done":
                body["event_id"] = event_id(outcome.request_id, outcome.status)
        return HttpAnswer(200, body)
