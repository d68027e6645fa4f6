"""How long COS restores take, per storage class and tier.

The windows come from Tencent's documentation (see REFERENCE.md section 1). They drive the
expected-completion times in events and, later, when completion is re-checked.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

Tier = Literal["Expedited", "Standard", "Bulk"]

ARCHIVE_CLASSES = frozenset({"ARCHIVE", "DEEP_ARCHIVE", "MAZ_ARCHIVE"})
# Intelligent-tiering objects need a restore only while they sit in an archive tier.
TIERED_CLASSES = frozenset({"INTELLIGENT_TIERING", "MAZ_INTELLIGENT_TIERING"})

_H = 3600
_WINDOWS: dict[tuple[str, str], tuple[int, int]] = {
    ("ARCHIVE", "Expedited"): (60, 5 * 60),
    ("ARCHIVE", "Standard"): (3 * _H, 5 * _H),
    ("ARCHIVE", "Bulk"): (5 * _H, 12 * _H),
    ("DEEP_ARCHIVE", "Standard"): (12 * _H, 24 * _H),
    ("DEEP_ARCHIVE", "Bulk"): (24 * _H, 48 * _H),
}


def archive_family(storage_class: str) -> str:
    """Map a storage class to the table's row: MAZ_ARCHIVE behaves like ARCHIVE."""
    upper = storage_class.upper()
    if "DEEP_ARCHIVE" in upper:
        return "DEEP_ARCHIVE"
    return "ARCHIVE"


def supports_tier(storage_class: str, tier: str) -> bool:
    return (archive_family(storage_class), tier) in _WINDOWS


def expected_window(storage_class: str, tier: str) -> tuple[timedelta, timedelta] | None:
    window = _WINDOWS.get((archive_family(storage_class), tier))
    if window is None:
        return None
    return timedelta(seconds=window[0]), timedelta(seconds=window[1])
