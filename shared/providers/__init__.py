"""Provider adapters, loaded on first use so each SDK is imported only by the path that needs it."""

from __future__ import annotations

import threading
from typing import Any

from shared.config import Settings
from shared.providers.base import ProviderAdapter


class ProviderRegistry:
    """One adapter per provider per process, built lazily and reused across invocations."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._adapters: dict[str, ProviderAdapter[Any, Any]] = {}
        self._lock = threading.Lock()

    def get(self, provider: str) -> ProviderAdapter[Any, Any]:
        adapter = self._adapters.get(provider)
        if adapter is not None:
            return adapter
        with self._lock:
            adapter = self._adapters.get(provider)
            if adapter is None:
                adapter = self._build(provider)
                self._adapters[provider] = adapter
            return adapter

    def _build(self, provider: str) -> ProviderAdapter[Any, Any]:
        if provider == "cos":
            from shared.providers.cos import CosAdapter

            return CosAdapter(self._settings.cos, timeout=self._settings.provider_timeout_seconds)
        if provider == "gcs":
            from shared.providers.gcs import GcsAdapter

            return GcsAdapter(self._settings.gcs, timeout=self._settings.provider_timeout_seconds)
        raise ValueError(f"unknown provider {provider!r}")
