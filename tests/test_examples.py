"""The examples in ``examples/``: the Google Cloud Workflows definition (structure, the request it
sends, the callback it waits on, the event fields it reads, checked against what restorefn
really sends and answers) and the Tencent SCF function chained on the TDMQ completion topic (run
on CMQ topic events carrying CloudEvents the service published to the TDMQ emulator)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from emulators._http import RunningEmulator, serve
from emulators.cos import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from emulators.tdmq import TdmqEmulator
from shared.events import RestoreEventData
from shared.outcome import OutcomeStatus, RestoreFacts
from shared.retry import RetryPolicy
from shared.service import RestoreService
from shared.sinks.tdmq import TdmqSink
from shared.validation import CosRestoreRequest, parse_request
from shared.webhook import HttpRequest, WebhookHandler
from tests.conftest import COS_BUCKET, COS_REGION, CollectingSink, cos_request, make_settings
from tests.deploy._scf import ENV_REF
from tests.integration.test_callbacks import Receiver

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "examples" / "gcp-workflows" / "restore_and_wait.yaml"
TENCENT = ROOT / "examples" / "tencent"
EXPRESSION = re.compile(r"\$\{(.*)\}", re.S)
EVENTS = "restore-events"


# ---------------------------------------------------------------------------- the workflow


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    document = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(document, dict)
    return document


def flat_steps(steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every step by name, those nested in switch conditions included."""
    found: dict[str, dict[str, Any]] = {}
    for step in steps:
        assert isinstance(step, dict) and len(step) == 1, step
        ((name, body),) = step.items()
        assert name not in found, f"duplicate step name {name}"
        found[name] = body
        for condition in body.get("switch", []):
            found.update(flat_steps(condition.get("steps", [])))
    return found


def expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [e for child in node.values() for e in expressions(child)]
    if isinstance(node, list):
        return [e for child in node for e in expressions(child)]
    if isinstance(node, str) and (match := EXPRESSION.fullmatch(node)):
        return [match.group(1)]
    return []


def path(value: Any, dotted: str) -> Any:
    """Evaluate a plain ``a.b.c`` reference of the workflow against a real document."""
    for part in dotted.split("."):
        assert isinstance(value, dict) and part in value, f"{dotted}: no {part!r} in {value!r}"
        value = value[part]
    return value


def test_workflow_structure_and_every_jump_lands(workflow: dict[str, Any]) -> None:
    main = workflow["main"]
    assert main["params"] == ["args"]
    steps = flat_steps(main["steps"])
    targets = [c["next"] for s in steps.values() for c in s.get("switch", []) if "next" in c]
    assert targets and set(targets) <= set(steps)
    assert "return" in list(steps.values())[-1]


def test_the_callback_endpoint_flows_into_the_request(workflow: dict[str, Any]) -> None:
    steps = flat_steps(workflow["main"]["steps"])
    [create] = [s for s in steps.values() if s.get("call") == "events.create_callback_endpoint"]
    assert create["args"]["http_callback_method"] == "POST"  # restorefn POSTs its events
    endpoint = create["result"]
    [post] = [s for s in steps.values() if s.get("try", {}).get("call") == "http.post"]
    call = post["try"]
    assert call["args"]["auth"] == {"type": "OIDC"}
    assert call["args"]["body"]["callback_url"] == f"${{{endpoint}.url}}"
    assert post["retry"] == "${http.default_retry}"  # idempotent: the request_id is fixed
    assert call["args"]["body"]["request_id"] == "${request_id}"
    [wait] = [s for s in steps.values() if s.get("call") == "events.await_callback"]
    assert wait["args"]["callback"] == f"${{{endpoint}}}"
    names = list(steps)
    assert names.index("create_callback") < names.index("request_restore") < names.index(
        "wait_for_event"
    )


def test_terminal_phases_are_restorefns(workflow: dict[str, Any]) -> None:
    init = flat_steps(workflow["main"]["steps"])["init"]["assign"]
    terminal = next(a["terminal_phases"] for a in init if "terminal_phases" in a)
    assert sorted(terminal) == sorted(s.value for s in OutcomeStatus if s.terminal)


def test_the_fields_read_back_exist_in_restorefns_events(workflow: dict[str, Any]) -> None:
    used = " ".join(expressions(workflow))
    event_fields = set(re.findall(r"\bevent\.data\.(\w+)", used))
    details_fields = set(re.findall(r"\bdetails\.(\w+)", used)) | set(
        re.findall(r'map\.get\(details, "(\w+)"\)', used)
    )
    assert event_fields == {"request_id", "outcome"}
    assert event_fields <= {item.name for item in dataclasses.fields(RestoreEventData)}
    assert details_fields and details_fields <= {
        item.name for item in dataclasses.fields(RestoreFacts)}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    try:
        yield hook
    finally:
        hook.close()


def test_the_request_is_valid_and_restorefns_callbacks_end_the_wait(
    workflow: dict[str, Any], cos_emulator: RunningEmulator, receiver: Receiver
) -> None:
    """The body the workflow sends, with its expressions given values, goes through restorefn's
    real webhook; the CloudEvents restorefn then POSTs to the callback URL are read the way the
    workflow reads them, until a terminal phase."""
    steps = flat_steps(workflow["main"]["steps"])
    body = steps["request_restore"]["try"]["args"]["body"]
    key = "workflow/restored.bin"
    values = {
        "args.bucket": COS_BUCKET, "args.region": COS_REGION, "args.key": key,
        'default(map.get(args, "days"), 1)': 2,
        'default(map.get(args, "tier"), "Standard")': "Expedited",
        "request_id": "workflow-exec-1", "callback.url": receiver.url,
        "execution_id": "exec-1",
    }

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        if isinstance(node, str) and (match := EXPRESSION.fullmatch(node)):
            assert match.group(1) in values, f"no test value for ${{{match.group(1)}}}"
            return values[match.group(1)]
        return node

    request = fill(body)
    parsed = parse_request(request)
    assert isinstance(parsed, CosRestoreRequest)
    assert str(parsed.callback_url) == receiver.url

    cos = cos_emulator.emulator
    cos.put_object(COS_BUCKET, key, b"x", "ARCHIVE")
    settings = make_settings(cos_emulator, webhook_auth="iam")
    service = RestoreService(settings, sink=CollectingSink(),
                             retry=RetryPolicy.from_settings(settings))
    service.now = lambda: datetime.fromtimestamp(cos.clock.now(), timezone.utc)
    answer = WebhookHandler(service).handle(HttpRequest(
        "POST", {"Content-Type": "application/json"}, json.dumps(request).encode(),
    ))
    assert answer.status == 202
    phase = path(answer.body, "outcome.status")  # the workflow's ${answer.body.outcome.status}
    terminal = {s.value for s in OutcomeStatus if s.terminal}
    assert phase == "initiated" and phase not in terminal  # so the workflow waits

    cos.clock.advance(600)  # the Expedited restore is done; a re-check (or trigger) looks
    service.check(request)
    phases = []
    for headers, event in receiver.accepted:
        assert headers["Content-Type"].split(";")[0] == "application/cloudevents+json"
        assert path(event, "data.request_id") == "workflow-exec-1"
        phases.append(path(event, "data.outcome"))
        assert event["type"] == f"restorefn.object.restore.v1.{phases[-1]}"
        if phases[-1] in terminal:
            break
    assert phases == ["initiated", "completed"]
    details = event["data"]
    returned = steps["done"]["return"]
    for name, expression in returned.items():
        inner = EXPRESSION.fullmatch(expression)
        assert inner is not None
        field = re.fullmatch(r'details\.(\w+)|map\.get\(details, "(\w+)"\)', inner.group(1))
        if field is not None:
            assert (field.group(1) or field.group(2)) in details, name
    assert details["context"] == {"workflow_execution": "exec-1"}
    assert details["expiry_time"] is not None


# ---------------------------------------------------------------------------- Tencent example


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("restorefn_example_on_restored",
                                                  TENCENT / "index.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tencent_example_subscribes_to_restorefns_completion_topic() -> None:
    example = yaml.safe_load((TENCENT / "serverless.yml").read_text())
    main = yaml.safe_load((ROOT / "serverless.yml").read_text())
    inputs = example["inputs"]
    assert (example["component"], inputs["runtime"]) == ("scf", "Python3.10")
    module_name, _, function = inputs["handler"].rpartition(".")
    assert (TENCENT / f"{module_name}.py").is_file()
    assert callable(getattr(load_example(), function))
    [trigger] = [e["cmq"] for e in inputs["events"]]
    topic = main["inputs"]["environment"]["variables"]["RESTORE_EVENT_TDMQ_TOPIC"]
    assert trigger["parameters"]["name"] == topic == "${env:RESTORE_EVENT_TDMQ_TOPIC}"
    assert trigger["parameters"]["enable"] is True
    assert inputs["region"] == main["inputs"]["region"]  # CMQ triggers are same-region only
    for name, value in inputs["environment"]["variables"].items():
        assert isinstance(value, str), name
    assert ENV_REF.fullmatch(inputs["role"])


@pytest.fixture
def published(cos_emulator: RunningEmulator) -> Iterator[tuple[RestoreService, TdmqEmulator]]:
    """A service publishing to a TDMQ emulator topic, its COS restores on the COS emulator."""
    emulator = TdmqEmulator(topics=[EVENTS], push_interval=None,
                            credentials={DEFAULT_SECRET_ID: DEFAULT_SECRET_KEY})
    try:
        with serve(emulator) as running:
            sink = TdmqSink(EVENTS, COS_REGION, DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY,
                            endpoint=f"127.0.0.1:{running.port}", sleep=lambda _s: None)
            settings = make_settings(cos_emulator)
            service = RestoreService(settings, sink=sink,
                                     retry=RetryPolicy.from_settings(settings))
            yield service, emulator
    finally:
        emulator.close()


def restore_and_complete(cos_emulator: RunningEmulator, service: RestoreService,
                         key: str) -> dict[str, Any]:
    cos_emulator.emulator.put_object(COS_BUCKET, key, b"restored bytes", "ARCHIVE")
    request = cos_request(key, request_id=f"ex-{key}", context={"ticket": "OPS-42"})
    assert service.restore(request).status is OutcomeStatus.INITIATED
    cos_emulator.emulator.clock.advance(600)
    assert service.check(request).status is OutcomeStatus.COMPLETED
    return request


def test_the_tencent_example_acts_on_the_completed_event_only(
    published: tuple[RestoreService, TdmqEmulator], cos_emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    service, emulator = published
    monkeypatch.delenv("COPY_TO_BUCKET", raising=False)
    example = load_example()
    answers: list[dict[str, int]] = []
    pushed: list[dict[str, Any]] = []

    def function(event: dict[str, Any]) -> None:
        pushed.append(event)
        answers.append(example.main_handler(event, {"request_id": "inv"}))

    emulator.set_topic_push(EVENTS, function)  # the example's CMQ topic trigger
    restore_and_complete(cos_emulator, service, "example/a.bin")
    assert emulator.deliver_due() == 2
    assert [p["Records"][0]["CMQ"]["msgTag"] for p in pushed] == [
        ["initiated", "cos"], ["completed", "cos"]
    ]
    assert answers == [{"completed": 0, "copied": 0, "ignored": 1},
                       {"completed": 1, "copied": 0, "ignored": 0}]
    [line] = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    assert line["message"] == "object restored"
    assert (line["bucket"], line["key"], line["region"]) == (COS_BUCKET, "example/a.bin",
                                                             COS_REGION)
    assert line["request_id"] == "ex-example/a.bin" and line["context"] == {"ticket": "OPS-42"}
    assert line["expiry_time"] is not None
    assert line["event_id"] == json.loads(pushed[1]["Records"][0]["CMQ"]["msgBody"])["id"]


def test_the_tencent_example_copies_the_restored_object_as_standard(
    published: tuple[RestoreService, TdmqEmulator], cos_emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """The copy request the COS SDK sends, header by header. The COS emulator does not emulate
    PUT Object - Copy (it answers 501), so the function raises and SCF would retry it."""
    service, emulator = published
    for name, value in {
        "COPY_TO_BUCKET": "standard-1250000000", "COPY_TO_PREFIX": "kept/",
        "COS_ENDPOINT": cos_emulator.url, "TENCENTCLOUD_SECRETID": DEFAULT_SECRET_ID,
        "TENCENTCLOUD_SECRETKEY": DEFAULT_SECRET_KEY,
    }.items():
        monkeypatch.setenv(name, value)
    example = load_example()
    emulator.set_topic_push(EVENTS, lambda event: example.main_handler(event, None))
    restore_and_complete(cos_emulator, service, "example/b.bin")
    assert emulator.deliver_due() == 1  # initiated (ignored); completed raised: not delivered
    [copy] = [e for e in cos_emulator.log.entries() if e.method == "PUT"]
    assert copy.host.startswith("standard-1250000000.cos.")
    assert copy.path == "/kept/example/b.bin"
    assert copy.headers["x-cos-copy-source"] == (
        f"{COS_BUCKET}.cos.{COS_REGION}.myqcloud.com/example/b.bin"
    )
    assert copy.headers["x-cos-storage-class"] == "STANDARD"
    assert copy.status == 501
    failed = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    assert failed[-1]["message"] == "copy failed; the invocation will be retried"
    assert failed[-1]["error_type"] == "CosServiceError"
    assert DEFAULT_SECRET_KEY not in json.dumps(failed)
    [pending] = [m for m in emulator.topic_messages(EVENTS) if m["tags"][0] == "completed"]
    assert pending["delivery_attempts"] == 1 and pending["delivered_at"] is None
