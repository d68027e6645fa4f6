"""Which buckets a deployment may touch.

Deny by default: a function deployed without an allowlist refuses every bucket, with an error
that says which variable to set, rather than restoring anywhere its credentials reach.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from shared.config import Settings

_VARIABLES = {"cos": "RESTORE_COS_ALLOWED_BUCKETS", "gcs": "RESTORE_GCS_ALLOWED_BUCKETS"}


class BucketAllowlist:
    def __init__(self, patterns: dict[str, tuple[str, ...]]) -> None:
        self._patterns = patterns

    @classmethod
    def from_settings(cls, settings: Settings) -> BucketAllowlist:
        return cls({"cos": settings.cos_allowed_buckets, "gcs": settings.gcs_allowed_buckets})

    def refusal(self, provider: str, bucket: str) -> str | None:
        """None when the bucket is allowed, otherwise the reason it is not."""
        patterns = self._patterns.get(provider, ())
        variable = _VARIABLES.get(provider, "the allowlist")
        if not patterns:
            return (
                f"no {provider} buckets are allowed: set {variable} to a comma-separated list of "
                "bucket names or glob patterns"
            )
        if any(fnmatchcase(bucket, pattern) for pattern in patterns):
            return None
        return f"bucket {bucket!r} is not in this deployment's {provider} allowlist ({variable})"
