"""SDK clients built from settings, shared by the adapters and the ledger stores.

Each builder imports its SDK when called, never at module import.
"""

from __future__ import annotations

from typing import Any

from shared.config import GcsSettings


def gcs_client(settings: GcsSettings) -> Any:
    """A ``google.cloud.storage.Client``; anonymous against an emulator endpoint."""
    from google.cloud import storage

    endpoint = settings.endpoint
    if not endpoint:
        return storage.Client(project=settings.project)
    from google.auth.credentials import AnonymousCredentials

    if "://" not in endpoint:
        endpoint = f"http://{endpoint}"  # STORAGE_EMULATOR_HOST may be a bare host:port
    return storage.Client(
        project=settings.project or "local-emulator",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": endpoint},
    )
