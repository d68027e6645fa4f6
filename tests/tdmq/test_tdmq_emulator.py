"""TDMQ emulator fidelity, checked through the real tencentcloud-sdk-python-tdmq client."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.tdmq.v20200217 import models

from emulators._http import FaultPlan, serve
from emulators.tdmq import (
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    MAX_MESSAGE_BYTES,
    TdmqEmulator,
    signature,
)
from tests.tdmq.conftest import QUEUE, REGION, TOPIC, Tdmq

REPO = Path(__file__).resolve().parents[2]
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def publish(client: Any, body: str, topic: str = TOPIC, tags: list[str] | None = None) -> Any:
    request = models.PublishCmqMsgRequest()
    request.TopicName = topic
    request.MsgContent = body
    if tags is not None:
        request.MsgTag = tags
    return client.PublishCmqMsg(request)


def send(client: Any, body: str, delay: int | None = 0, queue: str = QUEUE) -> Any:
    request = models.SendCmqMsgRequest()
    request.QueueName = queue
    request.MsgContent = body
    request.DelaySeconds = delay
    return client.SendCmqMsg(request)


def sdk_error(call: Any, *args: Any, **kwargs: Any) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as caught:
        call(*args, **kwargs)
    return caught.value


def control(tdmq: Tdmq, verb: str, payload: Any = None, method: str | None = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        f"{tdmq.running.url}/_emulator/{verb}", data=data,
        method=method or ("GET" if data is None else "POST"),
    )
    with NO_PROXY.open(request, timeout=10) as response:
        return json.loads(response.read())


# ---------------------------------------------------------------------------- publishing


def test_publish_stores_body_tags_region_and_answers_like_tencent(tdmq: Tdmq) -> None:
    response = publish(tdmq.client(), '{"hello": "wörld"}', tags=["completed", "cos"])
    assert response.Result is True
    [message] = tdmq.emulator.topic_messages(TOPIC)
    assert message["msg_id"] == response.MsgId
    assert message["request_id"] == response.RequestId
    assert message["body"] == '{"hello": "wörld"}'
    assert message["tags"] == ["completed", "cos"]
    assert message["region"] == REGION
    assert message["delay_seconds"] == 0 and message["visible"] is True


def test_topic_names_are_case_insensitive_and_messages_keep_their_order(tdmq: Tdmq) -> None:
    client = tdmq.client()
    ids = [publish(client, f"m{i}", topic=TOPIC.upper()).MsgId for i in range(3)]
    assert [m["msg_id"] for m in tdmq.emulator.topic_messages(TOPIC)] == ids
    assert len(set(ids)) == 3


def test_unknown_topic_and_queue_are_resource_not_found(tdmq: Tdmq) -> None:
    client = tdmq.client()
    error = sdk_error(publish, client, "x", topic="no-such-topic")
    assert error.code == "ResourceNotFound"
    assert error.requestId  # Tencent errors always carry the RequestId
    assert sdk_error(send, client, "x", queue="no-such-queue").code == "ResourceNotFound"
    assert tdmq.emulator.topic_messages(TOPIC) == []


def test_a_regional_topic_is_not_found_from_another_region(tdmq: Tdmq) -> None:
    tdmq.emulator.create_topic("shanghai-events", region="ap-shanghai")
    assert sdk_error(publish, tdmq.client(), "x", topic="shanghai-events").code == (
        "ResourceNotFound"
    )
    publish(tdmq.client(region="ap-shanghai"), "x", topic="shanghai-events")
    assert [m["region"] for m in tdmq.emulator.topic_messages("shanghai-events")] == [
        "ap-shanghai"
    ]


def test_message_size_limit_is_one_mebibyte_of_utf8(tdmq: Tdmq) -> None:
    client = tdmq.client()
    publish(client, "x" * MAX_MESSAGE_BYTES)  # exactly at the limit: accepted
    error = sdk_error(publish, client, "x" * (MAX_MESSAGE_BYTES - 1) + "é")  # 1 byte over
    assert error.code == "InvalidParameterValue"
    assert sdk_error(publish, client, "").code == "InvalidParameterValue"
    assert len(tdmq.emulator.topic_messages(TOPIC)) == 1


def test_a_topic_can_model_a_smaller_max_msg_size(tdmq: Tdmq) -> None:
    tdmq.emulator.create_topic("small", max_msg_size=65536)
    client = tdmq.client()
    publish(client, "x" * 65536, topic="small")
    assert sdk_error(publish, client, "x" * 65537, topic="small").code == "InvalidParameterValue"


def test_tag_limits(tdmq: Tdmq) -> None:
    client = tdmq.client()
    publish(client, "ok", tags=["t"] * 5)
    assert sdk_error(publish, client, "x", tags=["t"] * 6).code == "InvalidParameterValue"
    assert sdk_error(publish, client, "x", tags=["t" * 65]).code == "InvalidParameterValue"
    assert [m["tags"] for m in tdmq.emulator.topic_messages(TOPIC)] == [["t"] * 5]


def test_missing_parameters_and_unknown_action(tdmq: Tdmq) -> None:
    client = tdmq.client()
    request = models.PublishCmqMsgRequest()
    request.TopicName = TOPIC
    error = sdk_error(client.PublishCmqMsg, request)
    assert error.code == "MissingParameter" and "MsgContent" in error.message
    assert sdk_error(send, client, "x", delay=None).code == "MissingParameter"
    error = sdk_error(client.call, "ReceiveCmqMessage", {"QueueName": QUEUE})
    assert error.code == "InvalidAction"


# ---------------------------------------------------------------------------- authentication


def test_wrong_secret_key_is_signature_failure(tdmq: Tdmq) -> None:
    error = sdk_error(publish, tdmq.client(secret_key="not-the-key"), "x")
    assert error.code == "AuthFailure.SignatureFailure"
    assert tdmq.emulator.topic_messages(TOPIC) == []


def test_unknown_secret_id_is_secret_id_not_found(tdmq: Tdmq) -> None:
    error = sdk_error(publish, tdmq.client(secret_id="AKIDnobody"), "x")
    assert error.code == "AuthFailure.SecretIdNotFound"


def test_timestamp_more_than_five_minutes_off_is_signature_expire(tdmq: Tdmq) -> None:
    tdmq.emulator.server_time_offset = 301.0  # the client's clock is 301 s behind the server's
    assert sdk_error(publish, tdmq.client(), "x").code == "AuthFailure.SignatureExpire"
    tdmq.emulator.server_time_offset = 290.0
    publish(tdmq.client(), "within the window")
    assert len(tdmq.emulator.topic_messages(TOPIC)) == 1


def test_the_body_is_covered_by_the_signature(tdmq: Tdmq) -> None:
    """A signed request whose body is altered afterwards is refused; the original is accepted."""
    host = tdmq.endpoint
    params = {"TopicName": TOPIC, "MsgContent": "original"}
    headers, body = signature.sign_headers(
        DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, action="PublishCmqMsg", params=params,
        host=host, timestamp=int(time.time()),
    )

    def post(data: bytes) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{tdmq.running.url}/", data=data, headers=headers, method="POST"
        )
        with NO_PROXY.open(request, timeout=10) as response:
            assert response.status == 200  # Tencent answers errors with HTTP 200 too
            assert response.headers["Content-Type"] == "application/json"
            answer: dict[str, Any] = json.loads(response.read())["Response"]
            return answer

    tampered = post(body.replace(b"original", b"tampered"))
    assert tampered["Error"]["Code"] == "AuthFailure.SignatureFailure"
    assert "RequestId" in tampered
    accepted = post(body)
    assert accepted["Result"] is True
    assert [m["body"] for m in tdmq.emulator.topic_messages(TOPIC)] == ["original"]


def test_session_token_is_checked_when_configured() -> None:
    emulator = TdmqEmulator(
        topics=[TOPIC], tokens={DEFAULT_SECRET_ID: "session-token"}, push_interval=None
    )
    with serve(emulator) as running:
        tdmq = Tdmq(running)
        assert sdk_error(publish, tdmq.client(), "x").code == "AuthFailure.TokenFailure"
        error = sdk_error(publish, tdmq.client(token="wrong-token"), "x")
        assert error.code == "AuthFailure.TokenFailure"
        publish(tdmq.client(token="session-token"), "ok")
        assert len(emulator.topic_messages(TOPIC)) == 1


# ---------------------------------------------------------------------------- queues and delays


def test_delayed_message_becomes_visible_only_when_the_virtual_clock_passes(tdmq: Tdmq) -> None:
    client = tdmq.client()
    response = send(client, "later", delay=120)
    assert response.Result is True and response.MsgId
    emulator = tdmq.emulator
    [pending] = emulator.queue_messages(QUEUE)
    assert pending["delay_seconds"] == 120
    assert pending["visible_at"] == pytest.approx(pending["enqueued_at"] + 120)
    assert emulator.queue_messages(QUEUE, visible_only=True) == []
    assert emulator.pop_visible(QUEUE) == []

    emulator.clock.advance(110)
    assert emulator.pop_visible(QUEUE) == []
    emulator.clock.advance(10)
    [popped] = emulator.pop_visible(QUEUE)
    assert popped["msg_id"] == response.MsgId and popped["body"] == "later"
    assert emulator.queue_messages(QUEUE) == []
    assert [m["msg_id"] for m in emulator.consumed_messages(QUEUE)] == [response.MsgId]


def test_queue_pops_in_visibility_order(tdmq: Tdmq) -> None:
    client = tdmq.client()
    send(client, "slow", delay=300)
    send(client, "now", delay=0)
    send(client, "soon", delay=60)
    assert [m["body"] for m in tdmq.emulator.pop_visible(QUEUE)] == ["now"]
    tdmq.emulator.clock.advance(3600)
    assert [m["body"] for m in tdmq.emulator.pop_visible(QUEUE, max_count=1)] == ["soon"]
    assert [m["body"] for m in tdmq.emulator.pop_visible(QUEUE)] == ["slow"]


def test_delay_seconds_is_bounded_by_the_queue_retention(tdmq: Tdmq) -> None:
    tdmq.emulator.create_queue("short", msg_retention_seconds=60)
    client = tdmq.client()
    send(client, "ok", delay=60, queue="short")
    assert sdk_error(send, client, "x", delay=61, queue="short").code == "InvalidParameterValue"
    assert sdk_error(send, client, "x", delay=-1, queue="short").code == "InvalidParameterValue"


def test_delay_seconds_is_at_most_an_hour_whatever_the_retention(tdmq: Tdmq) -> None:
    tdmq.emulator.create_queue("long", msg_retention_seconds=43200)
    client = tdmq.client()
    send(client, "an hour", delay=3600, queue="long")
    error = sdk_error(send, client, "x", delay=3601, queue="long")
    assert error.code == "InvalidParameterValue" and "0..3600" in error.message
    assert [m["delay_seconds"] for m in tdmq.emulator.queue_messages("long")] == [3600]


# ---------------------------------------------------------------------------- faults and limits


def test_injected_5xx_keeps_the_status_with_a_tencent_error_body(tdmq: Tdmq) -> None:
    tdmq.running.faults.set(FaultPlan(script=[503]))
    error = sdk_error(publish, tdmq.client(), "x")
    # The SDK turns any non-200 answer into ServerNetworkError carrying the body.
    assert error.code == "ServerNetworkError"
    body = json.loads(error.message)
    assert body["Response"]["Error"]["Code"] == "InternalError"
    assert body["Response"]["RequestId"]
    publish(tdmq.client(), "after the fault")
    assert [(e.status, e.fault) for e in tdmq.actions("PublishCmqMsg")] == [
        (503, "injected"), (200, None)
    ]
    assert [m["body"] for m in tdmq.emulator.topic_messages(TOPIC)] == ["after the fault"]


@pytest.mark.parametrize(
    ("status", "code"),
    [(429, "RequestLimitExceeded"), (404, "ResourceNotFound"),
     (403, "AuthFailure.UnauthorizedOperation"), (400, "InvalidParameter")],
)
def test_injected_4xx_become_http_200_tencent_errors(tdmq: Tdmq, status: int, code: str) -> None:
    tdmq.running.faults.set(FaultPlan(script=[status]))
    assert sdk_error(publish, tdmq.client(), "x").code == code
    assert [e.status for e in tdmq.actions("PublishCmqMsg")] == [200]


def test_injected_connection_reset_is_a_client_network_error(tdmq: Tdmq) -> None:
    tdmq.running.faults.set(FaultPlan(script=[0]))
    assert sdk_error(publish, tdmq.client(), "x").code == "ClientNetworkError"
    assert tdmq.emulator.topic_messages(TOPIC) == []


def test_rate_limit_answers_request_limit_exceeded(tdmq: Tdmq) -> None:
    tdmq.emulator.rate_limit = 1
    client = tdmq.client()
    publish(client, "first")
    assert sdk_error(publish, client, "second").code == "RequestLimitExceeded"
    assert [m["body"] for m in tdmq.emulator.topic_messages(TOPIC)] == ["first"]


# ---------------------------------------------------------------------------- push delivery


def test_queue_push_to_a_callable_after_the_clock_advances(tdmq: Tdmq) -> None:
    received: list[dict[str, Any]] = []
    emulator = tdmq.emulator
    emulator.set_queue_push(QUEUE, received.append)
    response = send(tdmq.client(), '{"phase": "poll"}', delay=90)

    assert emulator.deliver_due() == 0
    assert received == []
    emulator.clock.advance(90)
    assert emulator.deliver_due() == 1
    [event] = received
    [record] = event["Records"]
    cmq = record["CMQ"]
    assert cmq["type"] == "queue"
    assert cmq["queueName"] == QUEUE
    assert cmq["msgId"] == response.MsgId
    assert cmq["requestId"] == response.RequestId
    assert cmq["msgBody"] == '{"phase": "poll"}'
    assert isinstance(cmq["queueOwner"], int)
    assert cmq["publishTime"].endswith("Z")
    assert emulator.queue_messages(QUEUE) == []
    assert emulator.deliver_due() == 0  # delivered once, not again
    assert len(received) == 1


def test_failed_push_is_retried_after_the_delays_then_dead_lettered(tdmq: Tdmq) -> None:
    calls: list[str] = []

    def broken(event: dict[str, Any]) -> None:
        calls.append(event["Records"][0]["CMQ"]["msgBody"])
        raise RuntimeError("consumer down")

    emulator = tdmq.emulator
    emulator.set_queue_push(QUEUE, broken)
    send(tdmq.client(), "m", delay=0)
    assert emulator.deliver_due() == 0
    assert emulator.deliver_due() == 0  # the retry is not due yet
    assert calls == ["m"]
    emulator.clock.advance(60)
    emulator.deliver_due()
    emulator.clock.advance(120)
    emulator.deliver_due()
    assert calls == ["m", "m", "m"]
    assert emulator.queue_messages(QUEUE) == []
    [dead] = emulator.dead_letters("queue", QUEUE)
    assert dead["body"] == "m" and dead["delivery_attempts"] == 3


def test_push_recovers_when_the_consumer_comes_back(tdmq: Tdmq) -> None:
    received: list[dict[str, Any]] = []
    healthy = False

    def flaky(event: dict[str, Any]) -> None:
        if not healthy:
            raise RuntimeError("not yet")
        received.append(event)

    emulator = tdmq.emulator
    emulator.set_queue_push(QUEUE, flaky)
    send(tdmq.client(), "m", delay=0)
    assert emulator.deliver_due() == 0
    healthy = True
    emulator.clock.advance(60)
    assert emulator.deliver_due() == 1
    assert [e["Records"][0]["CMQ"]["msgBody"] for e in received] == ["m"]
    assert emulator.consumed_messages(QUEUE)[0]["delivery_attempts"] == 2


class _Collector(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Handler", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cmq", received
    finally:
        server.shutdown()
        server.server_close()


def test_topic_push_to_an_http_url_through_the_control_api(
    tdmq: Tdmq, collector: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = collector
    publish(tdmq.client(), "before the subscription")  # not pushed: published earlier
    control(tdmq, "topics/push", {"name": TOPIC, "url": url, "subscription": "fn-sub"})
    response = publish(tdmq.client(), '{"id": 1}', tags=["completed", "gcs"])
    assert control(tdmq, "deliver", {}) == {"delivered": 1}
    [event] = received
    cmq = event["Records"][0]["CMQ"]
    assert cmq["type"] == "topic"
    assert cmq["topicName"] == TOPIC
    assert cmq["subscriptionName"] == "fn-sub"
    assert cmq["msgId"] == response.MsgId
    assert cmq["msgBody"] == '{"id": 1}'
    assert cmq["msgTag"] == ["completed", "gcs"]
    assert control(tdmq, "deliver", {}) == {"delivered": 0}
    # Topics keep their history for inspection.
    assert len(control(tdmq, f"topics?name={TOPIC}")) == 2


def test_background_pusher_delivers_without_deliver_due_and_stops_on_close() -> None:
    delivered = threading.Event()
    received: list[dict[str, Any]] = []

    def consumer(event: dict[str, Any]) -> None:
        received.append(event)
        delivered.set()

    emulator = TdmqEmulator(queues=[QUEUE], push_interval=0.02)
    try:
        with serve(emulator) as running:
            emulator.set_queue_push(QUEUE, consumer)
            send(Tdmq(running).client(), "pushed", delay=0)
            assert delivered.wait(timeout=10)
            assert received[0]["Records"][0]["CMQ"]["msgBody"] == "pushed"
    finally:
        emulator.close()
    assert emulator._pusher is not None and not emulator._pusher.is_alive()


# ---------------------------------------------------------------------------- control API


def test_control_api_creates_lists_and_pops(tdmq: Tdmq) -> None:
    created = control(tdmq, "queues", {"name": "ctl-queue", "msg_retention_seconds": 600})
    assert created["name"] == "ctl-queue" and created["msg_retention_seconds"] == 600
    control(tdmq, "topics", {"name": "ctl-topic"})
    assert {t["name"] for t in control(tdmq, "topics")} == {TOPIC, "ctl-topic"}
    client = tdmq.client()
    publish(client, "t", topic="ctl-topic", tags=["a"])
    send(client, "q", delay=30, queue="ctl-queue")

    [message] = control(tdmq, "topics?name=ctl-topic")
    assert (message["body"], message["tags"]) == ("t", ["a"])
    [queued] = control(tdmq, "queues?name=ctl-queue")
    assert queued["delay_seconds"] == 30 and queued["visible"] is False
    assert control(tdmq, "queues?name=ctl-queue&visible_only=true") == []
    assert control(tdmq, "queues/pop", {"name": "ctl-queue"}) == []
    control(tdmq, "clock", {"advance": 30})
    [popped] = control(tdmq, "queues/pop", {"name": "ctl-queue"})
    assert popped["body"] == "q"
    assert [m["body"] for m in control(tdmq, "queues/consumed?name=ctl-queue")] == ["q"]


def test_control_api_settings(tdmq: Tdmq) -> None:
    settings = control(tdmq, "settings", {"rate_limit": 5, "server_time_offset": 0})
    assert settings["rate_limit"] == 5.0
    assert tdmq.emulator.rate_limit == 5.0
    control(tdmq, "settings", {"verify_signatures": False})
    publish(tdmq.client(secret_key="anything"), "unchecked")
    assert len(tdmq.emulator.topic_messages(TOPIC)) == 1


def test_standalone_module_serves_the_sdk() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators.tdmq", "--port", "0", "--topic", "cli-topic",
         "--faults", json.dumps({"script": [500]})],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("TDMQ emulator listening on http://127.0.0.1:")
        url = line.split()[-1]

        class _Running:  # just enough of RunningEmulator for Tdmq.client()
            port = int(url.rsplit(":", 1)[1])

        client = Tdmq(_Running()).client()  # type: ignore[arg-type]
        assert sdk_error(publish, client, "x", topic="cli-topic").code == "ServerNetworkError"
        publish(client, "hello", topic="cli-topic")
        with NO_PROXY.open(f"{url}/_emulator/topics?name=cli-topic", timeout=10) as response:
            assert [m["body"] for m in json.loads(response.read())] == ["hello"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
