"""XML and date rendering in the shapes COS sends."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import quote
from xml.sax.saxutils import escape

XML_DECLARATION = "<?xml version='1.0' encoding='utf-8' ?>"
OWNER_UIN = "100000000001"


def http_date(ts: float) -> str:
    """``Tue, 19 Nov 2019 16:00:00 GMT``."""
    return formatdate(ts, usegmt=True)


def iso_date(ts: float) -> str:
    """``2019-11-19T16:00:00.000Z`` as in list results."""
    millis = int((ts - int(ts)) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{millis:03d}Z"


def error_xml(code: str, message: str, resource: str, request_id: str, trace_id: str) -> bytes:
    return (
        f"{XML_DECLARATION}<Error>"
        f"<Code>{escape(code)}</Code>"
        f"<Message>{escape(message)}</Message>"
        f"<Resource>{escape(resource)}</Resource>"
        f"<RequestId>{escape(request_id)}</RequestId>"
        f"<TraceId>{escape(trace_id)}</TraceId>"
        f"</Error>"
    ).encode()


@dataclass(frozen=True)
class ListedObject:
    key: str
    last_modified: float
    etag: str
    size: int
    storage_class: str


@dataclass(frozen=True)
class Listing:
    bucket: str
    prefix: str
    marker: str
    max_keys: int
    delimiter: str
    encoding_type: str
    is_truncated: bool
    next_marker: str | None
    contents: Sequence[ListedObject]
    common_prefixes: Sequence[str]


def list_bucket_xml(listing: Listing) -> bytes:
    """A V1 ``ListBucketResult``; with ``encoding-type=url`` keys and markers are URL-encoded."""

    def text(value: str) -> str:
        if listing.encoding_type == "url":
            value = quote(value.encode("utf-8"), safe="/")
        return escape(value)

    parts = [
        XML_DECLARATION,
        "<ListBucketResult>",
        f"<Name>{escape(listing.bucket)}</Name>",
        f"<EncodingType>{escape(listing.encoding_type)}</EncodingType>"
        if listing.encoding_type
        else "",
        f"<Prefix>{text(listing.prefix)}</Prefix>",
        f"<Marker>{text(listing.marker)}</Marker>",
        f"<MaxKeys>{listing.max_keys}</MaxKeys>",
        f"<Delimiter>{text(listing.delimiter)}</Delimiter>" if listing.delimiter else "",
        f"<IsTruncated>{'true' if listing.is_truncated else 'false'}</IsTruncated>",
    ]
    if listing.next_marker is not None:
        parts.append(f"<NextMarker>{text(listing.next_marker)}</NextMarker>")
    for prefix in listing.common_prefixes:
        parts.append(f"<CommonPrefixes><Prefix>{text(prefix)}</Prefix></CommonPrefixes>")
    for obj in listing.contents:
        parts.append(
            "<Contents>"
            f"<Key>{text(obj.key)}</Key>"
            f"<LastModified>{iso_date(obj.last_modified)}</LastModified>"
            f"<ETag>{escape(obj.etag)}</ETag>"
            f"<Size>{obj.size}</Size>"
            f"<Owner><ID>{OWNER_UIN}</ID><DisplayName>{OWNER_UIN}</DisplayName></Owner>"
            f"<StorageClass>{escape(obj.storage_class)}</StorageClass>"
            "</Contents>"
        )
    parts.append("</ListBucketResult>")
    return "".join(parts).encode("utf-8")
