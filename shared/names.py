"""Bucket and object naming rules, kept apart from the models so the rules read as the docs do."""

from __future__ import annotations

import ipaddress
import re

# COS: "BucketName-APPID"; the name part is lower-case letters, digits and dashes (1-50 chars),
# the APPID is the account's numeric id.
_COS_BUCKET = re.compile(r"^(?=[a-z0-9-]{1,50}-)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]{5,12}$")
_COS_REGION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_GCS_BUCKET_CHARS = re.compile(r"^[a-z0-9][a-z0-9._-]*[a-z0-9]$")
_COS_KEY_FORBIDDEN = re.compile("[\x00\r\n\x18\x19\x1a\x1b]")
COS_KEY_MAX_BYTES = 850
GCS_OBJECT_MAX_BYTES = 1024


def check_cos_bucket(value: str) -> str:
    if not _COS_BUCKET.match(value):
        raise ValueError(
            "must be BucketName-APPID: lower-case letters, digits and dashes, then '-' and the "
            "numeric APPID (e.g. examplebucket-1250000000)"
        )
    return value


def check_cos_region(value: str) -> str:
    # The region becomes part of a host name, so only a plain token is allowed.
    if not _COS_REGION.match(value):
        raise ValueError("must be a region token such as ap-guangzhou (letters, digits, '-', '_')")
    return value


def _utf8_size(value: str) -> int:
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800"): no UTF-8 spelling at all
        raise ValueError("must be valid Unicode (no unpaired surrogates)") from None


def check_cos_key(value: str) -> str:
    """Tencent's object key rules (https://cloud.tencent.com/document/product/436/13324): any
    UTF-8 up to 850 bytes, not starting with '/' or '\\', no CR or LF, none of the control
    characters CAN, EM, SUB and ESC. Also refused: a last path segment of '.' or '..', which
    HTTP clients (the COS SDK's included) collapse before sending, so the request would name
    another resource."""
    if not value:
        raise ValueError("must name an object, not be empty")
    if _utf8_size(value) > COS_KEY_MAX_BYTES:
        raise ValueError(f"must be at most {COS_KEY_MAX_BYTES} bytes of UTF-8")
    if value[0] in "/\\":
        raise ValueError("must not start with '/' or '\\' (COS keys are relative to the bucket)")
    if _COS_KEY_FORBIDDEN.search(value):
        raise ValueError("must not contain NUL, CR, LF or the control characters CAN, EM, SUB, ESC")
    if value.rsplit("/", 1)[-1] in (".", ".."):
        raise ValueError("must not end in a '.' or '..' path segment (HTTP clients collapse it)")
    return value


def check_gcs_bucket(value: str) -> str:
    """Google's bucket naming rules (https://cloud.google.com/storage/docs/buckets#naming)."""
    if not 3 <= len(value) <= 222:
        raise ValueError("must be 3-63 characters (up to 222 when it contains dots)")
    if not _GCS_BUCKET_CHARS.match(value):
        raise ValueError(
            "must use lower-case letters, digits, '-', '_' and '.', and start and end with a "
            "letter or digit"
        )
    if "." not in value and len(value) > 63:
        raise ValueError("must be at most 63 characters unless it contains dots")
    if any(not 1 <= len(part) <= 63 for part in value.split(".")):
        raise ValueError("each dot-separated part must be 1-63 characters")
    if value.startswith("goog") or "google" in value or "g00gle" in value:
        raise ValueError("must not start with 'goog' or contain 'google'")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return value
    raise ValueError("must not be an IP address")


def check_gcs_object(value: str) -> str:
    """Google's object naming rules: 1-1024 bytes of UTF-8, no CR or LF, not '.' or '..'."""
    size = _utf8_size(value)
    if not 1 <= size <= GCS_OBJECT_MAX_BYTES:
        raise ValueError(f"must be 1-{GCS_OBJECT_MAX_BYTES} bytes of UTF-8 (got {size})")
    if "\r" in value or "\n" in value:
        raise ValueError("must not contain carriage return or line feed")
    if value in (".", ".."):
        raise ValueError("must not be '.' or '..'")
    if value.startswith(".well-known/acme-challenge/"):
        raise ValueError("must not start with .well-known/acme-challenge/")
    return value
