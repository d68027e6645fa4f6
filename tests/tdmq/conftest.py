"""The TDMQ emulator on a loopback port picked at run time, and real SDK clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest

from emulators._http import RunningEmulator, serve
from emulators.tdmq import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, TdmqEmulator

REGION = "ap-guangzhou"
TOPIC = "restore-events"
QUEUE = "restore-delays"


@dataclass
class Tdmq:
    running: RunningEmulator

    @property
    def emulator(self) -> TdmqEmulator:
        return cast(TdmqEmulator, self.running.emulator)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.running.port}"

    def client(
        self,
        secret_id: str = DEFAULT_SECRET_ID,
        secret_key: str = DEFAULT_SECRET_KEY,
        region: str = REGION,
        token: str | None = None,
    ) -> Any:
        """A real ``TdmqClient`` (tencentcloud-sdk-python-tdmq) talking to the emulator."""
        from tencentcloud.common import credential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.tdmq.v20200217.tdmq_client import TdmqClient

        profile = ClientProfile(
            httpProfile=HttpProfile(protocol="http", endpoint=self.endpoint, reqTimeout=10)
        )
        return TdmqClient(credential.Credential(secret_id, secret_key, token), region, profile)

    def actions(self, action: str) -> list[Any]:
        """Request-log entries for one API action (injected faults included)."""
        return [e for e in self.running.log.entries() if e.headers.get("x-tc-action") == action]


@pytest.fixture
def tdmq() -> Iterator[Tdmq]:
    # push_interval=None: no background pusher, tests drive delivery with deliver_due().
    emulator = TdmqEmulator(topics=[TOPIC], queues=[QUEUE], push_interval=None)
    try:
        with serve(emulator) as running:
            yield Tdmq(running)
    finally:
        emulator.close()
