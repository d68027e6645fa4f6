"""Tencent COS emulator: archived objects, ``POST Object restore`` and its state machine."""

from emulators.cos.server import (
    DEFAULT_RESTORE_DURATIONS,
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    CosEmulator,
)

__all__ = ["DEFAULT_RESTORE_DURATIONS", "DEFAULT_SECRET_ID", "DEFAULT_SECRET_KEY", "CosEmulator"]
