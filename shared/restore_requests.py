"""The restore request as the functions use it, and a validator that needs no pydantic.

``shared.schemas`` holds the pydantic models: they are the specification (aliases, provider
inference, error messages, the JSON Schemas). Importing pydantic and building those models costs
a cold instance about 60 ms, so the request path does not load them when it can avoid it:

- ``CosRestoreRequest`` / ``GcsRestoreRequest`` here are frozen dataclasses with the models'
  field names, order and defaults: what every adapter, the service and the bulk worker take.
- ``fast_parse`` validates a payload with plain checks, and returns a request only when it is
  certain the pydantic model would accept that payload and produce the same values. Anything
  unusual (an invalid value, a bool or a float where an int goes, ``"5"`` for days, two spellings
  of one field, a URL pydantic would rewrite in ways not mirrored here...) makes it return None:
  the caller then validates with the models (``shared.validation.parse_request``), whose answer
  (value or errors) is authoritative. tests/core/test_fast_requests.py checks the agreement.
- ``from_model`` turns a validated pydantic model into the runtime value.

This module imports only the standard library, ``shared.names`` and ``shared.records``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import field, fields
from typing import Any, Literal

from shared import names
from shared.records import Record, record

MAX_CONTEXT_BYTES = 8 * 1024
MAX_CONTEXT_DEPTH = 32
MAX_BATCH = 100
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")


def _new_request_id() -> str:
    return uuid.uuid4().hex


def _check_request_id(value: str) -> str:
    if not _REQUEST_ID.match(value):
        raise ValueError(
            "must be 1-128 characters of letters, digits and . _ : @ / -, starting with a "
            "letter or digit"
        )
    return value


def _depth(value: Any) -> int:
    """How deeply ``value`` nests objects and arrays, counted without recursion (a hostile
    value may nest deeper than Python's stack)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(
            item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                pending.append((child, level + 1))
        deepest = max(deepest, level)
    return deepest


def _check_context(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Small and shallow: the context travels in every event, callback and ledger record, and
    pydantic's serializer refuses values nested a few hundred levels deep, so a context that
    deep would validate here and then fail every publish (a redelivery loop on the queues)."""
    if value is None:
        return value
    if _depth(value) > MAX_CONTEXT_DEPTH:
        raise ValueError(f"must nest objects and arrays at most {MAX_CONTEXT_DEPTH} levels deep")
    if len(json.dumps(value, separators=(",", ":"))) > MAX_CONTEXT_BYTES:
        raise ValueError(f"must serialise to at most {MAX_CONTEXT_BYTES} bytes of JSON")
    return value


# Which provider a payload without ``provider`` means: the spellings only one of them uses.
# (shared.schemas picks the union member with these too.)
_COS_SPELLINGS = frozenset(
    {"Bucket", "Region", "region", "Key", "key", "Days", "days", "RestoreRequest",
     "CASJobParameters", "tier", "Tier", "VersionId", "versionId", "version_id"}
)
_GCS_SPELLINGS = frozenset(
    {"object", "name", "object_name", "generation", "copySourceAcl", "copy_source_acl",
     "restoreToken", "restore_token", "ifGenerationMatch", "if_generation_match",
     "allow_overwrite", "allowOverwrite", "projection"}
)


def provider_of(value: Mapping[str, Any], cos_spellings: frozenset[str] = _COS_SPELLINGS,
                gcs_spellings: frozenset[str] = _GCS_SPELLINGS) -> str | None:
    """The explicit ``provider`` (None when it is not a string), else the provider whose
    spellings the payload uses (None when it uses both or neither). The status query passes
    its own spellings."""
    provider = value.get("provider")
    if provider is not None:
        return provider if isinstance(provider, str) else None
    keys = set(value)
    if keys & gcs_spellings and not keys & cos_spellings:
        return "gcs"
    if keys & cos_spellings and not keys & gcs_spellings:
        return "cos"
    return None


@record
class _RequestBase(Record):
    request_id: str = field(
        default_factory=_new_request_id,
        metadata={"description": "The caller's idempotency key; events and their ids derive "
                                 "from it."},
    )
    callback_url: str | None = field(
        default=None, metadata={"description": "Where each phase's CloudEvent is also POSTed."}
    )
    context: dict[str, Any] | None = field(
        default=None,
        metadata={"description": "Free-form JSON object echoed untouched in every event, for "
                                 "correlation."},
    )


@record
class CosRestoreRequest(_RequestBase):
    """Restore an archived Tencent COS object (POST Object restore)."""

    provider: Literal["cos"] = "cos"
    bucket: str = field(
        metadata={"description": "BucketName-APPID, e.g. examplebucket-1250000000."}
    )
    region: str = field(metadata={"description": "e.g. ap-guangzhou."})
    key: str = field(metadata={"description": "Object key."})
    days: int = field(metadata={"description": "How long the restored copy stays readable."})
    tier: Literal["Expedited", "Standard", "Bulk"] = "Standard"
    version_id: str | None = None

    @property
    def object_key(self) -> str:
        return self.key


@record
class GcsRestoreRequest(_RequestBase):
    """Restore a soft-deleted Google Cloud Storage object (objects.restore)."""

    provider: Literal["gcs"] = "gcs"
    bucket: str
    object: str = field(
        metadata={"description": "Object name: 1-1024 bytes of UTF-8, no CR or LF."}
    )
    generation: int | None = field(
        default=None,
        metadata={"description": "Soft-deleted generation; when absent the newest one of this "
                                 "name is used."},
    )
    copy_source_acl: bool | None = None
    projection: Literal["full", "noAcl"] | None = None
    if_generation_match: int | None = None
    if_generation_not_match: int | None = None
    if_metageneration_match: int | None = None
    if_metageneration_not_match: int | None = None
    restore_token: str | None = field(
        default=None, metadata={"description": "Hierarchical-namespace buckets only."}
    )
    allow_overwrite: bool = field(
        default=False,
        metadata={"description": "Replace a live object of the same name. Off by default: "
                                 "ifGenerationMatch=0."},
    )

    @property
    def object_key(self) -> str:
        return self.object

    def effective_if_generation_match(self) -> int | None:
        """ifGenerationMatch as sent: 0 unless the caller allowed an overwrite."""
        if self.if_generation_match is not None:
            return self.if_generation_match
        return None if self.allow_overwrite else 0


AnyRestoreRequest = CosRestoreRequest | GcsRestoreRequest


def from_model(model: Any) -> AnyRestoreRequest:
    """The runtime value of a validated ``shared.schemas`` model (same field names)."""
    cls: type[AnyRestoreRequest] = (
        CosRestoreRequest if model.provider == "cos" else GcsRestoreRequest
    )
    values = {item.name: getattr(model, item.name) for item in fields(cls)}
    if values["callback_url"] is not None:
        values["callback_url"] = str(values["callback_url"])
    return cls(**values)


# -- the fast path ---------------------------------------------------------------------------
# Each check below either returns the value pydantic would produce or raises _Unsure. It never
# decides that a payload is invalid: that (and its error list) is pydantic's answer alone.


class _Unsure(Exception):
    """The fast path cannot vouch for this payload; pydantic decides."""


_INT64_MAX = 2**63 - 1


def _text(value: Any) -> str:
    # Exactly str (pydantic coerces bytes and subclasses) and valid Unicode (pydantic refuses
    # lone surrogates with string_unicode).
    if type(value) is not str:
        raise _Unsure
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Unsure from None
    return value


def _checked(check: Callable[[str], str]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        try:
            return check(_text(value))
        except ValueError:
            raise _Unsure from None
    return convert


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


def _int_between(low: int, high: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        # Exactly int: pydantic would also take True, 2.0 and " 5 ", with its own rules.
        if type(value) is not int or not low <= value <= high:
            raise _Unsure
        return value
    return convert


def _int64_between(low: int) -> Callable[[Any], int]:
    """GCS int64 fields: an int, or (the JSON API's spelling) a string of ASCII digits."""
    within = _int_between(low, _INT64_MAX)

    def convert(value: Any) -> int:
        if type(value) is str:
            # str.isdigit() alone also holds for "²" (int() refuses it) and other scripts'
            # digits: the model's validator sees those, not this one.
            if not (value.isascii() and value.isdigit() and len(value) <= 19):
                raise _Unsure
            value = int(value)
        return within(value)
    return convert


def _text_between(low: int, high: int) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = _text(value)
        if not low <= len(text) <= high:
            raise _Unsure
        return text
    return convert


def _one_of(*choices: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if type(value) is not str or value not in choices:
            raise _Unsure
        return value
    return convert


def _boolean(value: Any) -> bool:
    if type(value) is not bool:  # pydantic also reads 0, 1, "yes", "off"...
        raise _Unsure
    return value


def _context(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if type(value) is not dict or any(type(key) is not str for key in value):
        raise _Unsure
    copy = dict(value)  # the model holds a dict of its own too
    try:
        return _check_context(copy)
    except (ValueError, TypeError, RecursionError):
        raise _Unsure from None


_URL = re.compile(
    r"(?P<scheme>[Hh][Tt][Tt][Pp][Ss]?)://(?P<host>[A-Za-z0-9.-]{1,253})"
    r"(?::(?P<port>[1-9][0-9]{0,4}))?"
    r"(?P<path>/[A-Za-z0-9._~!$&()*+,;=:@/%-]*)?"
    r"(?P<query>\?[A-Za-z0-9._~!$&()*+,;=:@/?%-]*)?"
    r"(?P<fragment>#[A-Za-z0-9._~!$&()*+,;=:@/?%-]*)?"
)
_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_BARE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_MAX_FAST_URL = 2000  # HttpUrl allows 2083 characters


def _ipv4_text(labels: list[str]) -> bool:
    """Four decimal octets written the way the URL parser writes them back."""
    return len(labels) == 4 and all(
        label.isdigit() and int(label) <= 255 and (label == "0" or label[0] != "0")
        for label in labels
    )


def _callback_url(value: Any) -> str | None:
    """``str(HttpUrl(value))`` for plain http(s) URLs: scheme and host lower-cased, a default
    port dropped, an empty path written "/". Anything the WHATWG parser would rewrite otherwise
    (dot segments, IDNA, numeric hosts other than dotted quads, user info, characters it
    percent-encodes, whitespace...) is left to pydantic."""
    if value is None:
        return None
    text = _text(value)
    match = _URL.fullmatch(text) if len(text) <= _MAX_FAST_URL else None
    if match is None or _BARE_PERCENT.search(text):
        raise _Unsure
    scheme, host, port, path, query, fragment = match.group(
        "scheme", "host", "port", "path", "query", "fragment"
    )
    scheme, host = scheme.lower(), host.lower()
    labels = host.split(".")
    if not all(_HOST_LABEL.fullmatch(label) for label in labels) or any(
        label.startswith("xn--") for label in labels
    ):
        raise _Unsure
    # A host whose last label starts with a digit is read as an IPv4 address (0x7f.1 ->
    # 127.0.0.1) or refused; only the canonical dotted quad is known to stay as written.
    if labels[-1][0].isdigit() and not _ipv4_text(labels):
        raise _Unsure
    if port is not None and int(port) > 65535:
        raise _Unsure
    if port == _DEFAULT_PORTS[scheme]:
        port = None
    path = path or "/"
    if any(segment.lower().replace("%2e", ".") in (".", "..")
           for segment in path.split("/")):
        raise _Unsure  # dot segments are resolved away
    authority = host if port is None else f"{host}:{port}"
    return f"{scheme}://{authority}{path}{query or ''}{fragment or ''}"


_Field = tuple[str, Callable[[Any], Any]]

_BASE_FIELDS: dict[str, _Field] = {
    "request_id": ("request_id", _checked(_check_request_id)),
    "requestId": ("request_id", _checked(_check_request_id)),
    "RequestId": ("request_id", _checked(_check_request_id)),
    "callback_url": ("callback_url", _callback_url),
    "callbackUrl": ("callback_url", _callback_url),
    "context": ("context", _context),
}

_COS_FIELDS: dict[str, _Field] = {
    **_BASE_FIELDS,
    "provider": ("provider", _one_of("cos")),
    "bucket": ("bucket", _checked(names.check_cos_bucket)),
    "Bucket": ("bucket", _checked(names.check_cos_bucket)),
    "region": ("region", _checked(names.check_cos_region)),
    "Region": ("region", _checked(names.check_cos_region)),
    "key": ("key", _checked(names.check_cos_key)),
    "Key": ("key", _checked(names.check_cos_key)),
    "days": ("days", _int_between(1, 365)),
    "Days": ("days", _int_between(1, 365)),
    "tier": ("tier", _one_of("Expedited", "Standard", "Bulk")),
    "Tier": ("tier", _one_of("Expedited", "Standard", "Bulk")),
    "version_id": ("version_id", _optional(_text_between(1, 128))),
    "versionId": ("version_id", _optional(_text_between(1, 128))),
    "VersionId": ("version_id", _optional(_text_between(1, 128))),
}
_COS_REQUIRED = ("bucket", "region", "key", "days")

_GCS_FIELDS: dict[str, _Field] = {
    **_BASE_FIELDS,
    "provider": ("provider", _one_of("gcs")),
    "bucket": ("bucket", _checked(names.check_gcs_bucket)),
    "object": ("object", _checked(names.check_gcs_object)),
    "name": ("object", _checked(names.check_gcs_object)),
    "object_name": ("object", _checked(names.check_gcs_object)),
    "generation": ("generation", _optional(_int64_between(1))),
    "copy_source_acl": ("copy_source_acl", _optional(_boolean)),
    "copySourceAcl": ("copy_source_acl", _optional(_boolean)),
    "projection": ("projection", _optional(_one_of("full", "noAcl"))),
    "if_generation_match": ("if_generation_match", _optional(_int64_between(0))),
    "ifGenerationMatch": ("if_generation_match", _optional(_int64_between(0))),
    "if_generation_not_match": ("if_generation_not_match", _optional(_int64_between(0))),
    "ifGenerationNotMatch": ("if_generation_not_match", _optional(_int64_between(0))),
    "if_metageneration_match": ("if_metageneration_match", _optional(_int64_between(0))),
    "ifMetagenerationMatch": ("if_metageneration_match", _optional(_int64_between(0))),
    "if_metageneration_not_match": (
        "if_metageneration_not_match", _optional(_int64_between(0))),
    "ifMetagenerationNotMatch": ("if_metageneration_not_match", _optional(_int64_between(0))),
    "restore_token": ("restore_token", _optional(_text_between(1, 256))),
    "restoreToken": ("restore_token", _optional(_text_between(1, 256))),
    "allow_overwrite": ("allow_overwrite", _boolean),
    "allowOverwrite": ("allow_overwrite", _boolean),
}
_GCS_REQUIRED = ("bucket", "object")


def _put(values: dict[str, Any], name: str, convert: Callable[[Any], Any], raw: Any) -> None:
    if name in values:  # two spellings of one field: which wins is pydantic's business
        raise _Unsure
    values[name] = convert(raw)


def _nested(value: Any, *shapes: set[str]) -> dict[str, Any]:
    """A nested provider object (``RestoreRequest``, ``CASJobParameters``) holding exactly the
    keys of one of ``shapes`` (the model ignores other keys in there; the fast path does not
    guess what that means)."""
    if type(value) is not dict or set(value) not in shapes:
        raise _Unsure
    return value


def _cos_nested(values: dict[str, Any], name: str, raw: Any) -> None:
    """Tencent's nesting: ``RestoreRequest.Days``, ``[RestoreRequest.]CASJobParameters.Tier``."""
    if name == "CASJobParameters":
        _put(values, "tier", _COS_FIELDS["tier"][1], _nested(raw, {"Tier"})["Tier"])
        return
    nested = _nested(raw, {"Days"}, {"Days", "CASJobParameters"}, {"CASJobParameters"})
    if "Days" in nested:
        _put(values, "days", _COS_FIELDS["days"][1], nested["Days"])
    if "CASJobParameters" in nested:
        _cos_nested(values, "CASJobParameters", nested["CASJobParameters"])


def _fast(payload: Mapping[str, Any]) -> AnyRestoreRequest | None:
    provider = payload.get("provider")
    if "provider" in payload and (type(provider) is not str or provider not in ("cos", "gcs")):
        return None
    provider = provider_of(payload)
    cos = provider == "cos"
    if not cos and provider != "gcs":
        return None
    spellings = _COS_FIELDS if cos else _GCS_FIELDS
    values: dict[str, Any] = {}
    for key, raw in payload.items():
        if cos and key in ("RestoreRequest", "CASJobParameters"):
            _cos_nested(values, key, raw)
            continue
        known = spellings.get(key) if type(key) is str else None
        if known is None:
            return None  # an extra field (or an alias of the other provider)
        _put(values, known[0], known[1], raw)
    if any(name not in values for name in (_COS_REQUIRED if cos else _GCS_REQUIRED)):
        return None
    if cos:
        return CosRestoreRequest(**values)
    needs_live_object = (
        values.get("if_generation_match") not in (None, 0)
        or values.get("if_generation_not_match") is not None
        or values.get("if_metageneration_match") is not None
        or values.get("if_metageneration_not_match") is not None
    )
    if needs_live_object and not values.get("allow_overwrite", False):
        return None  # refused by the model (allow_overwrite must be true)
    return GcsRestoreRequest(**values)


def fast_parse(payload: Mapping[str, Any]) -> AnyRestoreRequest | None:
    """The request ``payload`` describes, when it is certain the pydantic model would accept it
    with exactly these values; None when unsure (the caller then asks the model)."""
    try:
        return _fast(payload)
    except _Unsure:
        return None
