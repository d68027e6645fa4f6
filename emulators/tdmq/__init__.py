"""Tencent TDMQ (CMQ edition) emulator: ``PublishCmqMsg``, ``SendCmqMsg``, delayed visibility and
push delivery of SCF CMQ trigger events."""

from emulators.tdmq.server import (
    API_VERSION,
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    MAX_MESSAGE_BYTES,
    TdmqEmulator,
)

__all__ = [
    "API_VERSION",
    "DEFAULT_SECRET_ID",
    "DEFAULT_SECRET_KEY",
    "MAX_MESSAGE_BYTES",
    "TdmqEmulator",
]
