"""Google Cloud Storage JSON-API emulator (soft delete, restore, bulkRestore)."""

from .server import GcsEmulator
from .store import LIVE, NONCURRENT, SOFT_DELETED, GcsError

__all__ = ["LIVE", "NONCURRENT", "SOFT_DELETED", "GcsEmulator", "GcsError"]
