"""TdmqSink end to end against the TDMQ emulator, its retry rules, and its configuration."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from emulators._http import FaultPlan, serve
from emulators.tdmq import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, TdmqEmulator
from shared.config import ConfigurationError, Settings
from shared.events import CloudEvent, build_event
from shared.outcome import Outcome, OutcomeStatus
from shared.sinks import SinkError, sink_from_settings
from shared.sinks.tdmq import MAX_MESSAGE_BYTES, TdmqSink, message_tags, parse_endpoint
from tests.tdmq.conftest import REGION, TOPIC, Tdmq

ROOT = Path(__file__).resolve().parents[2]


def make_event(status: OutcomeStatus = OutcomeStatus.COMPLETED, **overrides: object) -> CloudEvent:
    fields: dict[str, object] = dict(
        status=status, request_id=f"req-{uuid.uuid4()}", provider="cos",
        bucket="archive-1250000000", region="ap-guangzhou", key="logs/2026/01.tar",
        tier="Standard", days=3, context={"ticket": "OPS-7"},
    )
    fields.update(overrides)
    return build_event(Outcome(**fields))  # type: ignore[arg-type]


def make_sink(tdmq: Tdmq, sleeps: list[float] | None = None, **overrides: object) -> TdmqSink:
    options: dict[str, object] = dict(
        topic=TOPIC, region=REGION, secret_id=DEFAULT_SECRET_ID, secret_key=DEFAULT_SECRET_KEY,
        token=None, endpoint=tdmq.endpoint, attempts=4, timeout=5.0,
        sleep=(sleeps.append if sleeps is not None else lambda _s: None),
    )
    options.update(overrides)
    return TdmqSink(**options)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- delivery


def test_event_arrives_as_the_structured_cloudevent_json_with_tags(tdmq: Tdmq) -> None:
    event = make_event()
    make_sink(tdmq).publish(event)
    [message] = tdmq.emulator.topic_messages(TOPIC)
    assert message["body"] == event.to_json()  # byte for byte what the other sinks send
    payload = json.loads(message["body"])
    assert payload["id"] == event.id
    assert payload["type"] == "restorefn.object.restore.v1.completed"
    assert payload["data"]["context"] == {"ticket": "OPS-7"}
    assert message["tags"] == ["completed", "cos"]
    assert message["region"] == REGION


def test_tags_follow_status_and_provider_and_skip_the_unknown(tdmq: Tdmq) -> None:
    sink = make_sink(tdmq)
    sink.publish(make_event(OutcomeStatus.ALREADY_RESTORED, provider="gcs", generation=3))
    sink.publish(build_event(Outcome(status=OutcomeStatus.REJECTED, request_id="r-1")))
    assert [m["tags"] for m in tdmq.emulator.topic_messages(TOPIC)] == [
        ["already_restored", "gcs"], ["rejected"]
    ]


def test_one_client_is_built_and_reused(tdmq: Tdmq) -> None:
    sink = make_sink(tdmq)
    sink.publish(make_event())
    client = sink._get_client()
    sink.publish(make_event())
    assert sink._get_client() is client
    assert len(tdmq.emulator.topic_messages(TOPIC)) == 2


def test_endpoint_with_scheme_and_session_token() -> None:
    emulator = TdmqEmulator(
        topics=[TOPIC], tokens={DEFAULT_SECRET_ID: "tok-123"}, push_interval=None
    )
    with serve(emulator) as running:
        sink = TdmqSink(TOPIC, REGION, DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, "tok-123",
                        endpoint=f"http://127.0.0.1:{running.port}/", sleep=lambda _s: None)
        assert sink.endpoint == ("http", f"127.0.0.1:{running.port}")
        sink.publish(make_event())
        assert len(emulator.topic_messages(TOPIC)) == 1

        wrong = TdmqSink(TOPIC, REGION, DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, "tok-wrong-999",
                         endpoint=f"127.0.0.1:{running.port}", sleep=lambda _s: None)
        with pytest.raises(SinkError, match=r"AuthFailure\.TokenFailure") as caught:
            wrong.publish(make_event())
        assert "tok-wrong-999" not in str(caught.value)


# ---------------------------------------------------------------------------- retries


def test_injected_500s_are_retried_then_succeed(tdmq: Tdmq) -> None:
    tdmq.running.faults.set(FaultPlan(script=[500, 502]))
    sleeps: list[float] = []
    event = make_event()
    make_sink(tdmq, sleeps).publish(event)
    assert [(e.status, e.fault) for e in tdmq.actions("PublishCmqMsg")] == [
        (500, "injected"), (502, "injected"), (200, None)
    ]
    assert [m["body"] for m in tdmq.emulator.topic_messages(TOPIC)] == [event.to_json()]
    assert len(sleeps) == 2
    assert 0 < sleeps[0] <= 0.25 * 1.5 and 0 < sleeps[1] <= 0.5 * 1.5  # exponential, jittered


def test_request_limit_exceeded_is_retried(tdmq: Tdmq) -> None:
    tdmq.running.faults.set(FaultPlan(script=[429]))  # answered as HTTP 200 RequestLimitExceeded
    sleeps: list[float] = []
    make_sink(tdmq, sleeps).publish(make_event())
    assert len(tdmq.actions("PublishCmqMsg")) == 2
    assert len(sleeps) == 1
    assert len(tdmq.emulator.topic_messages(TOPIC)) == 1


def test_gives_up_after_the_bounded_attempts(tdmq: Tdmq) -> None:
    tdmq.running.faults.set(FaultPlan(script=[503] * 10))
    sleeps: list[float] = []
    event = make_event()
    with pytest.raises(SinkError, match="ServerNetworkError") as caught:
        make_sink(tdmq, sleeps, attempts=3).publish(event)
    assert event.id in str(caught.value)
    assert len(tdmq.actions("PublishCmqMsg")) == 3
    assert len(sleeps) == 2
    assert tdmq.emulator.topic_messages(TOPIC) == []


def test_connection_errors_are_retried_then_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    sleeps: list[float] = []
    sink = TdmqSink(TOPIC, REGION, DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY,
                    endpoint=f"127.0.0.1:{port}", attempts=3, timeout=2, sleep=sleeps.append)
    with pytest.raises(SinkError, match="ClientNetworkError"):
        sink.publish(make_event())
    assert len(sleeps) == 2


def test_unknown_topic_is_final_without_retry(tdmq: Tdmq) -> None:
    sleeps: list[float] = []
    with pytest.raises(SinkError, match="ResourceNotFound") as caught:
        make_sink(tdmq, sleeps, topic="no-such-topic").publish(make_event())
    assert sleeps == []
    assert len(tdmq.actions("PublishCmqMsg")) == 1
    assert "no-such-topic" in str(caught.value)


def test_auth_failure_is_final_and_the_message_holds_no_secret(tdmq: Tdmq) -> None:
    sleeps: list[float] = []
    secret_key = "wrong-secret-key-" + uuid.uuid4().hex
    sink = make_sink(tdmq, sleeps, secret_key=secret_key, token="tok-" + uuid.uuid4().hex)
    with pytest.raises(SinkError, match=r"AuthFailure\.SignatureFailure") as caught:
        sink.publish(make_event())
    message = str(caught.value)
    assert secret_key not in message
    assert "tok-" not in message
    assert DEFAULT_SECRET_ID not in message
    assert sleeps == []
    assert len(tdmq.actions("PublishCmqMsg")) == 1
    assert secret_key not in repr(sink)


def test_unusable_credentials_are_a_sink_error_without_the_value(tdmq: Tdmq) -> None:
    sink = make_sink(tdmq, secret_key=" spaced-secret ")  # the SDK refuses keys with spaces
    with pytest.raises(SinkError, match="InvalidCredential") as caught:
        sink.publish(make_event())
    assert "spaced-secret" not in str(caught.value)
    assert tdmq.actions("PublishCmqMsg") == []


def test_oversized_event_is_refused_before_any_request(tdmq: Tdmq) -> None:
    event = make_event(context={"blob": "x" * MAX_MESSAGE_BYTES})
    with pytest.raises(SinkError, match="exceed") as caught:
        make_sink(tdmq).publish(event)
    assert event.id in str(caught.value)
    assert tdmq.actions("PublishCmqMsg") == []


def test_message_tags_and_endpoint_parsing() -> None:
    assert message_tags(make_event(OutcomeStatus.IN_PROGRESS)) == ["in_progress", "cos"]
    assert parse_endpoint("127.0.0.1:9000") == ("http", "127.0.0.1:9000")
    assert parse_endpoint("https://tdmq.ap-guangzhou.tencentcloudapi.com/") == (
        "https", "tdmq.ap-guangzhou.tencentcloudapi.com"
    )
    with pytest.raises(ValueError, match="attempts"):
        TdmqSink(TOPIC, REGION, "id", "key", attempts=0)


# ---------------------------------------------------------------------------- configuration


def tdmq_env(tdmq: Tdmq, **extra: str) -> dict[str, str]:
    env = {
        "RESTORE_EVENT_SINK": "tdmq",
        "RESTORE_EVENT_TDMQ_TOPIC": TOPIC,
        "TENCENTCLOUD_REGION": REGION,
        "TENCENTCLOUD_SECRETID": DEFAULT_SECRET_ID,
        "TENCENTCLOUD_SECRETKEY": DEFAULT_SECRET_KEY,
        "TDMQ_ENDPOINT": tdmq.endpoint,
        "RESTORE_EVENT_TDMQ_ATTEMPTS": "2",
    }
    env.update(extra)
    return env


def test_sink_from_settings_uses_the_scf_credentials_and_region(tdmq: Tdmq) -> None:
    settings = Settings.from_env(tdmq_env(tdmq))
    assert settings.event_tdmq_region == REGION
    assert settings.event_tdmq_attempts == 2
    sink = sink_from_settings(settings)
    assert isinstance(sink, TdmqSink)
    event = make_event()
    sink.publish(event)
    [message] = tdmq.emulator.topic_messages(TOPIC)
    assert message["body"] == event.to_json()


def test_explicit_tdmq_credentials_and_region_win(tdmq: Tdmq) -> None:
    tdmq.emulator.credentials = {"AKIDtdmqOnly": "tdmq-only-key"}
    tdmq.emulator.create_topic("sh-events", region="ap-shanghai")
    env = tdmq_env(
        tdmq,
        TENCENTCLOUD_SECRETKEY="cos-key-the-emulator-does-not-know",
        TDMQ_SECRET_ID="AKIDtdmqOnly",
        TDMQ_SECRET_KEY="tdmq-only-key",
        RESTORE_EVENT_TDMQ_TOPIC="sh-events",
        RESTORE_EVENT_TDMQ_REGION="ap-shanghai",
    )
    sink_from_settings(Settings.from_env(env)).publish(make_event())
    assert [m["region"] for m in tdmq.emulator.topic_messages("sh-events")] == ["ap-shanghai"]


def test_sink_from_settings_attempts_bound_the_retries(tdmq: Tdmq) -> None:
    tdmq.running.faults.set(FaultPlan(script=[503] * 5))
    with pytest.raises(SinkError):
        sink_from_settings(Settings.from_env(tdmq_env(tdmq))).publish(make_event())
    assert len(tdmq.actions("PublishCmqMsg")) == 2


@pytest.mark.parametrize(
    ("drop", "extra", "named"),
    [
        ("RESTORE_EVENT_TDMQ_TOPIC", {}, "RESTORE_EVENT_TDMQ_TOPIC"),
        ("TENCENTCLOUD_REGION", {}, "RESTORE_EVENT_TDMQ_REGION"),
        ("TENCENTCLOUD_SECRETKEY", {}, "TDMQ_SECRET_KEY"),
        (None, {"TDMQ_SECRET_ID": "AKIDonly"}, "TDMQ_SECRET_KEY"),
        (None, {"TDMQ_SECRET_KEY": "key-only-secret"}, "TDMQ_SECRET_ID"),
    ],
)
def test_configuration_errors_name_the_missing_variable(
    tdmq: Tdmq, drop: str | None, extra: dict[str, str], named: str
) -> None:
    env = tdmq_env(tdmq, **extra)
    if drop is not None:
        del env[drop]
    with pytest.raises(ConfigurationError, match=named) as caught:
        sink_from_settings(Settings.from_env(env))
    assert "key-only-secret" not in str(caught.value)
    assert DEFAULT_SECRET_KEY not in str(caught.value)


def test_invalid_attempts_is_a_configuration_error_without_secrets(tdmq: Tdmq) -> None:
    env = tdmq_env(tdmq, RESTORE_EVENT_TDMQ_ATTEMPTS="0", TDMQ_SECRET_KEY="very-secret-value")
    with pytest.raises(ConfigurationError, match="event_tdmq_attempts") as caught:
        Settings.from_env(env)
    assert "very-secret-value" not in str(caught.value)


def test_importing_the_sinks_does_not_import_the_tencentcloud_sdk() -> None:
    code = (
        "import sys\n"
        "import shared.sinks, shared.sinks.tdmq\n"
        "from shared.config import Settings\n"
        "from shared.sinks import sink_from_settings\n"
        "sink = sink_from_settings(Settings.from_env({'RESTORE_EVENT_SINK': 'tdmq',"
        " 'RESTORE_EVENT_TDMQ_TOPIC': 't', 'TENCENTCLOUD_REGION': 'ap-guangzhou',"
        " 'TENCENTCLOUD_SECRETID': 'id', 'TENCENTCLOUD_SECRETKEY': 'key'}))\n"
        "print(type(sink).__name__)\n"
        "print(','.join(m for m in sys.modules if m.split('.')[0] == 'tencentcloud'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True, timeout=60)
    built, loaded = result.stdout.splitlines()
    assert built == "TdmqSink"
    assert loaded == ""
