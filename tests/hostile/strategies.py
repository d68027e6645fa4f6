"""Hypothesis strategies for hostile input: the real shapes (golden events, golden requests)
taken apart and put back wrong.

Every strategy starts from something an entry point really receives and mutates it: values
swapped for other types, huge numbers, unicode (combining marks, right-to-left overrides, lone
surrogates), nested junk, keys dropped or added. Purely random bytes would be refused at the
first check; mutated real shapes reach the deep parts (aliases, batches, base64 data inside an
envelope inside a record).
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from tests.conftest import COS_BUCKET, COS_REGION, GCS_BUCKET
from tests.hostile.contract import SENTINEL

JSON = Any

HOSTILE_STRINGS = [
    "", " ", "\x00", "\r\n", "\t", "null", "true", "0", "-1", "1e999", "NaN",
    "\u202eevil", "e\u0301\u0301\u0301", "\U0001f600\U0001f4a9", "\ufeffbom", "\u200b",
    "\ud800", "\udfff", "../../etc/passwd", "%00", "%2F%2e%2e", "a+b c", "?x=1#frag",
    "//double//slash", "/", "\\", "${jndi:ldap://x}", "<script>alert(1)</script>",
    "' OR 1=1 --", "\x1b[31m", "\u0000\u0001\u001f", "x" * 2000, "é" * 600,
    "restorefn.recheck.v1", "restorefn.bulk.v1", COS_BUCKET, GCS_BUCKET, COS_REGION, SENTINEL,
]

HUGE_NUMBERS = [
    0, -1, 1, 365, 366, 2**31, -(2**31), 2**63 - 1, 2**63, 2**64, 10**30, -(10**30),
    1.5, -0.0, 1e308, -1e308, 5e-324,
]


def text_values() -> st.SearchStrategy[str]:
    """Short unicode text from every category (surrogates included) and known troublemakers."""
    return st.one_of(
        st.sampled_from(HOSTILE_STRINGS),
        st.text(st.characters(codec=None), max_size=40),
        st.text(st.characters(categories=["Cs", "Mn", "Cc", "Cf", "So"]), max_size=12),
    )


def scalars() -> st.SearchStrategy[JSON]:
    return st.one_of(
        st.none(), st.booleans(), text_values(), st.sampled_from(HUGE_NUMBERS),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
    )


def json_values(max_leaves: int = 8) -> st.SearchStrategy[JSON]:
    """Nested junk: objects and arrays of scalars, a few levels deep."""
    return st.recursive(
        scalars(),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(text_values(), children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def _paths(doc: JSON, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location inside ``doc`` (the root included)."""
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found.extend(_paths(value, (*prefix, index)))
    return found


def _parent(doc: JSON, path: tuple[Any, ...]) -> JSON:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def mutated(draw: st.DrawFn, base: JSON, *, max_edits: int = 4,
            extra_keys: tuple[str, ...] = ()) -> JSON:
    """``base`` with up to ``max_edits`` edits: a value replaced (another type, huge, unicode,
    junk), a key deleted, a key added (``extra_keys`` are names the code knows), or the
    document wrapped. Zero edits is allowed: the valid shape must keep working too."""
    doc = copy.deepcopy(base)
    # Few edits are the interesting ones: a request one mistake away from valid goes deepest.
    edits = draw(st.sampled_from([0, 1, 1, 1, 2, 2, 3, max_edits]))
    for _ in range(min(edits, max_edits)):
        path = draw(st.sampled_from(_paths(doc)))
        op = draw(st.sampled_from(["replace", "replace", "delete", "add", "wrap"]))
        if not path:  # the root itself
            if op == "wrap":
                doc = draw(st.sampled_from([[doc], {"requests": [doc]}, {"data": doc}]))
            elif op in ("replace", "delete"):
                doc = draw(json_values())
            continue
        parent = _parent(doc, path)
        if op == "delete":
            del parent[path[-1]]
        elif op == "add" and isinstance(parent, dict):
            name = draw(st.one_of(st.sampled_from(extra_keys or ("x",)), text_values()))
            parent[name] = draw(json_values(4))
        elif op == "wrap":
            parent[path[-1]] = [parent[path[-1]]]
        else:
            parent[path[-1]] = draw(json_values(6))
    return doc


# -- what the entry points receive -----------------------------------------------------------
REQUEST_NAMES = (
    "provider", "bucket", "Bucket", "region", "Region", "key", "Key", "object", "name",
    "days", "Days", "tier", "Tier", "RestoreRequest", "CASJobParameters", "version_id",
    "versionId", "generation", "copySourceAcl", "projection", "ifGenerationMatch",
    "ifMetagenerationNotMatch", "restoreToken", "allowOverwrite", "request_id", "requestId",
    "callback_url", "context", "requests", "kind", "job_id", "report", "selection", "dry_run",
)


def cos_request(key: str = "hostile/cos.bin") -> dict[str, Any]:
    return {"provider": "cos", "bucket": COS_BUCKET, "region": COS_REGION, "key": key,
            "days": 1, "tier": "Expedited"}


def gcs_request(name: str = "hostile/gcs.txt") -> dict[str, Any]:
    return {"provider": "gcs", "bucket": GCS_BUCKET, "object": name}


def bulk_job() -> dict[str, Any]:
    return {"kind": "restorefn.bulk.v1", "provider": "cos", "bucket": COS_BUCKET,
            "region": COS_REGION, "days": 1, "dry_run": True,
            "selection": {"prefix": "hostile/"}}


def recheck_message() -> dict[str, Any]:
    return {"kind": "restorefn.recheck.v1", "request": {**cos_request(), "request_id": "hr-1"},
            "initiated_at": "2026-11-20T10:00:00Z", "storage_class": "ARCHIVE", "check": 0}


def object_names() -> st.SearchStrategy[str]:
    """Names an object may really have (and a few it may not): unicode, URL syntax, slashes."""
    return st.one_of(
        text_values(),
        st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), min_size=1,
                max_size=60),
        st.lists(st.sampled_from(["a", "/", "//", ".", "..", "%", "%2F", "+", "?", "#", " ",
                                  "~", "&=;", "\u00e9", "e\u0301", "\U0001f600", "\u05d0",
                                  "\\"]), min_size=1, max_size=8).map("".join),
    )


@st.composite
def renamed(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """A valid request naming a hostile object: reaches the provider call with that name."""
    field = "key" if base.get("provider") == "cos" else "object"
    return {**base, field: draw(object_names())}


def request_payloads(golden: Callable[[str], Any]) -> st.SearchStrategy[JSON]:
    """Restore requests, batches, bulk jobs and re-check messages, each mutated; and valid
    requests naming hostile objects."""
    bases = [
        cos_request(), gcs_request(), golden("gcp_webhook_gcs.json"),
        golden("gcp_webhook_batch.json"), {"requests": [cos_request(), gcs_request()]},
        {"Bucket": COS_BUCKET, "Region": COS_REGION, "Key": "hostile/k",
         "RestoreRequest": {"Days": 2, "CASJobParameters": {"Tier": "Bulk"}}},
        {**gcs_request(), "generation": "1700000000000000", "ifGenerationMatch": "0",
         "allowOverwrite": True, "context": {"a": [1, {"b": None}]}},
        bulk_job(), recheck_message(),
    ]
    return st.one_of(
        st.sampled_from(bases).flatmap(lambda base: mutated(base, extra_keys=REQUEST_NAMES)),
        st.sampled_from([cos_request(), gcs_request()]).flatmap(renamed),
    )


def nested_context(depth: int, **fields: Any) -> bytes:
    """A GCS request (``fields`` replacing its own) whose context nests ``depth`` objects,
    itself included: written as text, since ``json.dumps`` would overflow the stack first."""
    context = '{"a":' * depth + "1" + "}" * depth
    request = json.dumps({**gcs_request(), **fields})[:-1]
    return f'{request}, "context": {context}}}'.encode()


# Parseable, small, and deeper than anything downstream wants to serialize.
DEEP_BUT_PARSEABLE = [nested_context(depth) for depth in (33, 300, 900)]


def json_body(payloads: st.SearchStrategy[JSON]) -> st.SearchStrategy[bytes]:
    """The payload as a body: JSON (sometimes with NaN/Infinity, which Python emits and parses
    but JSON forbids), or bytes that are not JSON, not UTF-8, or truncated."""
    as_json = payloads.map(lambda doc: json.dumps(doc).encode())
    return st.one_of(
        as_json, as_json, as_json, as_json, as_json,
        payloads.map(lambda doc: json.dumps(doc).encode()[: max(1, len(json.dumps(doc)) // 2)]),
        st.sampled_from([b"NaN", b'{"days": Infinity}', b'{"context": {"n": NaN}}']).map(
            lambda raw: raw),
        st.sampled_from([b"", b"\xff\xfe\x00", b"[" * 5000 + b"]" * 5000, b"1" * 5000,
                         b'{"a":' * 3000 + b"1" + b"}" * 3000, *DEEP_BUT_PARSEABLE]),
        st.binary(max_size=64),
    )


def base64_of(raw: st.SearchStrategy[bytes]) -> st.SearchStrategy[str]:
    """Base64 text of ``raw``, or text that only looks like base64."""
    return st.one_of(
        raw.map(lambda data: base64.b64encode(data).decode()),
        raw.map(lambda data: base64.b64encode(data).decode()),
        st.sampled_from(["!!!", "====", "YQ", "YQ=", "YWJj\n", "\u00e9\u00e9\u00e9\u00e9", ""]),
        st.text(max_size=16),
    )


CONTENT_TYPES = [
    *["application/json"] * 12, "application/json; charset=utf-8",
    "APPLICATION/JSON", "text/plain", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", "application/cloudevents+json", "", "application/json;;",
    "\u00e9/\u00e9",
]


# What an HTTP header value can carry: bytes read as latin-1, no control characters.
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                    exclude_categories=["Cc"]), max_size=80)


def header_junk() -> st.SearchStrategy[dict[str, str]]:
    """Headers nobody asked for: odd names and values, non-ASCII, huge."""
    names = st.one_of(
        st.sampled_from(["X-Junk", "X-Forwarded-For", "Accept", "User-Agent", "X-Restore-Foo",
                         "Content-Encoding", "X-CloudTasks-TaskName", "ce-id", "Cookie"]),
        st.from_regex(r"\AX-[A-Za-z0-9-]{1,20}\Z"),
    )
    values = st.one_of(
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
        st.text(st.characters(min_codepoint=0xA0, max_codepoint=0xFF), max_size=10),
        st.sampled_from(["a" * 16_000, "gzip", "\u00e9t\u00e9", "v1=" + "0" * 64]),
    )
    return st.dictionaries(names, values, max_size=3)


def signature_garbage() -> st.SearchStrategy[dict[str, str]]:
    """Webhook authentication headers that must never authenticate."""
    stamps = st.one_of(st.sampled_from(["", "0", "-1", "1e10", "99999999999999", "abc",
                                        "\u00b2\u00b3", " 1 "]),
                       st.integers(min_value=0, max_value=2**40).map(str))
    signatures = st.one_of(
        st.sampled_from(["", "v1=", "v1=zz", "v0=" + "a" * 64, "v1=" + "a" * 64,
                         "v1=" + "\u00e9" * 64, ",,,", "v1==", "V1=" + "0" * 64]),
        header_text,
    )
    return st.fixed_dictionaries({}, optional={"X-Restore-Timestamp": stamps,
                                               "X-Restore-Signature": signatures})
