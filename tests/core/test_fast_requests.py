"""The pydantic-free fast path (``shared.restore_requests.fast_parse``) against the models.

- Agreement: whenever ``fast_parse`` returns a request, the pydantic model accepts the same
  payload and yields exactly the same values (property-based, over valid requests in every
  spelling and their mutations: wrong types, bools, digit strings, duplicates, extras, bad
  names, URLs of many shapes).
- Coverage: common payloads (the golden events' requests among them) take the fast path, so it
  cannot silently decay into "always defer".
- The request path loads no pydantic for a valid request.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared import schemas
from shared.restore_requests import (
    CosRestoreRequest,
    GcsRestoreRequest,
    fast_parse,
    from_model,
)
from shared.validation import RequestValidationError, parse_request, problems_from
from tests.hostile.strategies import (
    REQUEST_NAMES,
    json_values,
    mutated,
    object_names,
    text_values,
)

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "events"
REQUEST_ID_SPELLINGS = ("request_id", "requestId", "RequestId")

FUZZ = settings(
    max_examples=400, derandomize=True, database=None, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)


def _typed(value: Any) -> Any:
    """``value`` with every scalar's type next to it: True == 1 and 1.0 == 1 in Python, but a
    bool where the model holds an int is a disagreement."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    return (type(value).__name__, value)


def slow_parse(payload: Any) -> CosRestoreRequest | GcsRestoreRequest:
    return from_model(schemas.RESTORE_REQUEST_ADAPTER.validate_python(dict(payload)))


def check_agreement(payload: Any) -> CosRestoreRequest | GcsRestoreRequest | None:
    """The fast answer (None: deferred); when there is one, the model's answer is the same."""
    original = copy.deepcopy(payload)
    fast = fast_parse(payload)
    assert payload == original, "fast_parse changed its input"
    if fast is None:
        return None
    try:
        slow = slow_parse(payload)
    except ValidationError as exc:
        pytest.fail(f"fast path accepted what the model refuses: {payload!r}\n{exc}")
    assert type(fast) is type(slow)
    generated = not any(name in payload for name in REQUEST_ID_SPELLINGS)
    exclude = {"request_id"} if generated else set()
    assert _typed(fast.model_dump(exclude=exclude)) == _typed(slow.model_dump(exclude=exclude))
    assert fast.model_dump_json() != ""  # the runtime value serialises
    if generated:
        assert len(fast.request_id) == 32 and fast.request_id.isalnum()
    return fast


# -- the runtime types mirror the models -----------------------------------------------------
@pytest.mark.parametrize(("runtime", "model"), [
    (CosRestoreRequest, schemas.CosRestoreRequest),
    (GcsRestoreRequest, schemas.GcsRestoreRequest),
])
def test_runtime_types_have_the_models_fields_order_defaults_and_descriptions(
    runtime: type, model: Any,
) -> None:
    fields = dataclasses.fields(runtime)
    assert [f.name for f in fields] == list(model.model_fields)
    for item in fields:
        info = model.model_fields[item.name]
        assert item.metadata.get("description") == info.description, item.name
        if info.is_required() or info.default_factory is not None:
            assert item.default is dataclasses.MISSING, item.name
        else:
            assert item.default == info.default, item.name
    assert runtime.__doc__ == model.__doc__


def test_shared_schemas_still_exports_the_moved_names() -> None:
    from shared import restore_requests

    for name in ("MAX_CONTEXT_BYTES", "MAX_CONTEXT_DEPTH", "MAX_BATCH", "_new_request_id",
                 "_check_request_id", "_depth", "_check_context"):
        assert getattr(schemas, name) is getattr(restore_requests, name)


# -- generators ------------------------------------------------------------------------------
COS_BUCKETS = ["archive-1250000000", "examplebucket-1250000000", "a-12345", "b-" + "9" * 12,
               "x" * 49 + "-1250000000"]
BAD_COS_BUCKETS = ["NoAppId", "ab-123", "-1250000000", "x" * 51 + "-1250000000", ""]
COS_REGIONS = ["ap-guangzhou", "ap-beijing", "COS_REGION", "eu_frankfurt", "a" * 64]
BAD_COS_REGIONS = ["ap guangzhou", "", "-x", "a" * 65, "ap-guangzhou\n"]
GCS_BUCKETS = ["restore-demo", "my-bucket", "a.b.c", "abc", "x_y", "a" * 63,
               ("a" * 63 + ".") * 3 + "a"]
BAD_GCS_BUCKETS = ["ab", "Upper", "goog-x", "my-google-bucket", "192.168.1.1", "a" * 64,
                   "a..b", "-ab"]
REQUEST_IDS = ["golden-1", "r", "job-1/0001", "a:b@c.d_e-f/g", "A" * 128, "abc\n"]
BAD_REQUEST_IDS = ["A" * 129, "-x", "x y", "", "\u00e9", "\ud800", None, 1]
TIERS = ["Expedited", "Standard", "Bulk"]
BAD_TIERS = ["bulk", "Fast", "", "Standard ", None, 1]


def mostly(valid: st.SearchStrategy[Any], *other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid values about seven times in eight: a payload has a dozen fields, and the fast
    path is only exercised when all of them are right. (A flatmap over a biased choice:
    hypothesis does not pick ``one_of`` branches evenly.)"""
    odd = st.one_of(*other)
    return st.sampled_from([True] * 7 + [False]).flatmap(lambda ok: valid if ok else odd)


def request_ids() -> st.SearchStrategy[Any]:
    return mostly(
        st.one_of(st.sampled_from(REQUEST_IDS),
                  st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:@/-]{0,40}\Z")),
        st.sampled_from(BAD_REQUEST_IDS), text_values(),
    )


def ints(low: int, high: int) -> st.SearchStrategy[Any]:
    """Mostly valid ints, and what pydantic reads its own way: bools, floats, digit strings,
    out-of-range and huge numbers."""
    return mostly(
        st.integers(low, high),
        st.booleans(), st.integers(-(2**70), 2**70), st.integers(low, high).map(float),
        st.integers(low, high).map(str),
        st.sampled_from([" 5", "5 ", "+5", "05", "5.0", "1e3", "\u00b2", "\u0661", "0x10",
                         None, 1.5, -0.0, low - 1, high + 1, 2**63 - 1, 2**63, 2**64,
                         "9" * 19, "9" * 20]),
    )


def int64s(low: int) -> st.SearchStrategy[Any]:
    """GCS int64 fields: ints and their JSON API spelling, digit strings."""
    valid = st.integers(low, 2**63 - 1)
    return st.one_of(valid, valid.map(str), ints(low, 2**63 - 1))


def cos_keys() -> st.SearchStrategy[Any]:
    return mostly(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9/._ -]{0,30}\Z"), object_names())


def gcs_objects() -> st.SearchStrategy[Any]:
    return mostly(st.from_regex(r"\A[A-Za-z0-9/._ -]{1,30}\Z"), object_names())


GOOD_LABELS = ["example", "Example", "EXAMPLE", "a", "h-1", "a--b", "h1", "api", "com"]
ODD_LABELS = ["-h", "h-", "xn--p1ai", "XN--abc", "h_1", "123", "0x7f", "1", "255", "256",
              "010", "0", "\u00e9", "ex ample", "", "a" * 64]
GOOD_SEGMENTS = ["a", "B", "", "a.b", "%41", "%2F", "~user", "@", ":", "!$&()*+,;=", "-_.",
                 "restore", "v1"]
ODD_SEGMENTS = [".", "..", "%2e", "%2E%2e", ".%2e", "%zz", "%", "a b", "\u00e9", "\\", "'",
                "\t", "a\nb", "{x}", "|", "^", "[x]", '"']
GOOD_PIECES = ["a=b", "a=b&c=d", "?", "/", "%41", "x:y@z", "", "token=abc"]
ODD_PIECES = ["'", "x y", "%zz", "#", "\u00e9", "`", '"', "<>", "{}", "\\", "%"]


@st.composite
def urls(draw: st.DrawFn) -> str:
    """Callback URLs: plain ones (the fast path's) and every part also drawn from values the
    URL parser normalises or refuses: case, default and zero-padded ports, dot segments,
    percent signs, IDNA, numeric hosts, user info, whitespace, other schemes."""
    scheme = draw(mostly(st.sampled_from(["https", "http"]),
                         st.sampled_from(["HTTPS", "Http", "ftp", "ws", "https:", ""])))
    separator = draw(mostly(st.just("://"), st.sampled_from([":/", ":///", ":\\\\", "//"])))
    user = draw(mostly(st.just(""), st.sampled_from(["user@", "u:p@", "@"])))
    labels = mostly(st.sampled_from(GOOD_LABELS), st.sampled_from(ODD_LABELS))
    host = draw(mostly(
        st.lists(labels, min_size=1, max_size=4).map(".".join),
        st.sampled_from(["10.0.0.1", "127.0.0.1", "1.2.3.4", "255.255.255.255", "[::1]",
                         "0x7f.1", "127.1", "1.2.3.256", "01.2.3.4", "example.com.", "a.1"]),
    ))
    port = draw(mostly(st.sampled_from(["", "", ":443", ":80", ":8080", ":65535"]),
                       st.sampled_from([":", ":0443", ":0", ":65536", ":99999", ":x"])))
    segments = mostly(st.sampled_from(GOOD_SEGMENTS), st.sampled_from(ODD_SEGMENTS))
    path = draw(st.one_of(
        st.just(""), st.lists(segments, max_size=4).map(lambda parts: "/" + "/".join(parts)),
    ))
    pieces = mostly(st.sampled_from(GOOD_PIECES), st.sampled_from(ODD_PIECES))
    query = draw(st.one_of(st.just(""), pieces.map(lambda text: "?" + text)))
    fragment = draw(st.one_of(st.just(""), pieces.map(lambda text: "#" + text)))
    url = f"{scheme}{separator}{user}{host}{port}{path}{query}{fragment}"
    return draw(mostly(st.just(url), st.sampled_from([" " + url, url + " ", url.upper(),
                                                     url + "/" + "x" * 2100])))


def callback_urls() -> st.SearchStrategy[Any]:
    return mostly(st.one_of(urls(), st.none()), text_values(), st.integers())


def contexts() -> st.SearchStrategy[Any]:
    return mostly(
        st.one_of(st.none(), st.dictionaries(st.text(max_size=8), json_values(6), max_size=4)),
        st.dictionaries(text_values(), json_values(6), max_size=4),
        st.sampled_from([{"x": "y" * 9000}, {"n": float("nan")}, {"t": (1, 2)}, [], "ctx",
                         {"a": {"b": {"c": [[[{"d": 1}]]]}}}, {1: "x"}, {b"k": "x"}]),
    )


def _maybe(draw: st.DrawFn, payload: dict[str, Any], names: tuple[str, ...],
           values: st.SearchStrategy[Any]) -> None:
    """Sometimes add the field under one of its spellings."""
    if draw(st.booleans()):
        payload[draw(st.sampled_from(names))] = draw(values)


@st.composite
def cos_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """COS requests in every spelling (flat, provider casing, Tencent's nesting)."""
    payload: dict[str, Any] = {}
    provider = draw(mostly(st.sampled_from(["cos", "absent"]),
                           st.sampled_from([None, "gcs", "COS", 1])))
    if provider != "absent":
        payload["provider"] = provider
    payload[draw(st.sampled_from(["bucket", "Bucket"]))] = draw(mostly(
        st.sampled_from(COS_BUCKETS), st.sampled_from(BAD_COS_BUCKETS), text_values()))
    payload[draw(st.sampled_from(["region", "Region"]))] = draw(mostly(
        st.sampled_from(COS_REGIONS), st.sampled_from(BAD_COS_REGIONS), text_values()))
    payload[draw(st.sampled_from(["key", "Key"]))] = draw(cos_keys())
    days = draw(ints(1, 365))
    tier = draw(mostly(st.sampled_from(TIERS), st.sampled_from(BAD_TIERS), text_values()))
    days_at = draw(st.sampled_from(["days", "Days", "RestoreRequest"]))
    tier_at = draw(st.sampled_from(["absent", "tier", "Tier", "CASJobParameters",
                                    "RestoreRequest"]))
    if days_at == "RestoreRequest":
        payload["RestoreRequest"] = {"Days": days}
    else:
        payload[days_at] = days
    if tier_at == "CASJobParameters":
        payload["CASJobParameters"] = {"Tier": tier}
    elif tier_at == "RestoreRequest":
        payload.setdefault("RestoreRequest", {})["CASJobParameters"] = {"Tier": tier}
    elif tier_at != "absent":
        payload[tier_at] = tier
    _maybe(draw, payload, ("version_id", "versionId", "VersionId"), mostly(
        st.one_of(st.text(min_size=1, max_size=10), st.none()),
        st.sampled_from(["", "v" * 128, "v" * 129, "\ud800", 1])))
    _maybe(draw, payload, REQUEST_ID_SPELLINGS, request_ids())
    _maybe(draw, payload, ("callback_url", "callbackUrl"), callback_urls())
    _maybe(draw, payload, ("context",), contexts())
    return payload


@st.composite
def gcs_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """GCS requests in every spelling (ours, the JSON API's), preconditions and consent."""
    payload: dict[str, Any] = {}
    provider = draw(mostly(st.sampled_from(["gcs", "absent"]),
                           st.sampled_from([None, "cos", "GCS"])))
    if provider != "absent":
        payload["provider"] = provider
    payload["bucket"] = draw(mostly(st.sampled_from(GCS_BUCKETS),
                                    st.sampled_from(BAD_GCS_BUCKETS), text_values()))
    payload[draw(st.sampled_from(["object", "name", "object_name"]))] = draw(gcs_objects())
    _maybe(draw, payload, ("generation",), st.one_of(int64s(1), st.none()))
    _maybe(draw, payload, ("copy_source_acl", "copySourceAcl"), mostly(
        st.one_of(st.booleans(), st.none()), st.sampled_from([0, 1, "true", "yes"])))
    _maybe(draw, payload, ("projection",), mostly(
        st.sampled_from(["full", "noAcl", None]), st.sampled_from(["NOACL", "", 1])))
    for names in (("if_generation_match", "ifGenerationMatch"),
                  ("if_generation_not_match", "ifGenerationNotMatch"),
                  ("if_metageneration_match", "ifMetagenerationMatch"),
                  ("if_metageneration_not_match", "ifMetagenerationNotMatch")):
        if draw(st.integers(0, 3)) == 0:
            payload[draw(st.sampled_from(names))] = draw(st.one_of(
                st.sampled_from([0, "0", None]), int64s(0)))
    _maybe(draw, payload, ("restore_token", "restoreToken"), mostly(
        st.one_of(st.text(min_size=1, max_size=10), st.none()),
        st.sampled_from(["", "t" * 256, "t" * 257])))
    _maybe(draw, payload, ("allow_overwrite", "allowOverwrite"), mostly(
        st.booleans(), st.sampled_from([None, 0, 1, "true"])))
    _maybe(draw, payload, REQUEST_ID_SPELLINGS, request_ids())
    _maybe(draw, payload, ("callback_url", "callbackUrl"), callback_urls())
    _maybe(draw, payload, ("context",), contexts())
    return payload


SPELLINGS = {
    "bucket": ["Bucket"], "Bucket": ["bucket"], "region": ["Region"], "Region": ["region"],
    "key": ["Key"], "Key": ["key"], "days": ["Days", "RestoreRequest"],
    "Days": ["days", "RestoreRequest"], "tier": ["Tier", "CASJobParameters"],
    "Tier": ["tier", "CASJobParameters"], "object": ["name", "object_name"],
    "name": ["object", "object_name"], "object_name": ["object", "name"],
    "request_id": ["requestId", "RequestId"], "requestId": ["request_id", "RequestId"],
    "copySourceAcl": ["copy_source_acl"], "allow_overwrite": ["allowOverwrite"],
    "callback_url": ["callbackUrl"], "version_id": ["versionId", "VersionId"],
    "RestoreRequest": ["days", "Days"], "CASJobParameters": ["tier", "Tier"],
}


@st.composite
def duplicated(draw: st.DrawFn, payloads: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A payload with one field given twice, under two of its spellings."""
    payload = draw(payloads)
    present = [name for name in payload if name in SPELLINGS]
    if not present:
        return payload
    name = draw(st.sampled_from(present))
    other = draw(st.sampled_from(SPELLINGS[name]))
    if other == "RestoreRequest":
        payload[other] = {"Days": payload[name]}
    elif other == "CASJobParameters":
        payload[other] = {"Tier": payload[name]}
    elif name in ("RestoreRequest", "CASJobParameters"):
        inner = payload[name]
        payload[other] = inner.get("Days", inner.get("Tier")) if isinstance(inner, dict) else 1
    else:
        payload[other] = draw(st.sampled_from([payload[name], copy.deepcopy(payload[name])]))
    return payload


def every_payload() -> st.SearchStrategy[Any]:
    both = st.one_of(cos_payloads(), gcs_payloads())
    return st.one_of(
        both, both,
        duplicated(both),
        both.flatmap(lambda base: mutated(base, extra_keys=REQUEST_NAMES)),
    )


# -- agreement -------------------------------------------------------------------------------
@FUZZ
@given(payload=cos_payloads())
def test_cos_fast_answers_agree_with_the_model(payload: dict[str, Any]) -> None:
    check_agreement(payload)


@FUZZ
@given(payload=gcs_payloads())
def test_gcs_fast_answers_agree_with_the_model(payload: dict[str, Any]) -> None:
    check_agreement(payload)


@FUZZ
@given(payload=every_payload())
def test_mutated_and_duplicated_payloads_agree_with_the_model(payload: Any) -> None:
    if isinstance(payload, dict):
        check_agreement(payload)
    else:
        with pytest.raises(RequestValidationError):
            parse_request(payload)


@FUZZ
@given(url=urls(), provider=st.sampled_from(["cos", "gcs"]))
def test_callback_urls_agree_with_httpurl(url: str, provider: str) -> None:
    base = COMMON_COS[0] if provider == "cos" else COMMON_GCS[0]
    check_agreement({**base, "callback_url": url})


@FUZZ
@given(payload=every_payload())
def test_parse_request_answers_like_the_model_alone(payload: Any) -> None:
    """Fast or not, parse_request gives the model's value or the model's exact errors."""
    if not isinstance(payload, dict):
        return
    expected: Any = None
    try:
        expected = slow_parse(payload)
    except ValidationError as exc:
        expected = problems_from(exc)
    except Exception as exc:  # e.g. TypeError from a context value JSON cannot hold
        expected = type(exc)
    if isinstance(expected, type):
        with pytest.raises(expected):
            parse_request(payload)
    elif isinstance(expected, list):
        with pytest.raises(RequestValidationError) as caught:
            parse_request(payload)
        assert caught.value.problems == expected
    else:
        got = parse_request(payload)
        exclude = set() if any(n in payload for n in REQUEST_ID_SPELLINGS) else {"request_id"}
        assert _typed(got.model_dump(exclude=exclude)) == _typed(
            expected.model_dump(exclude=exclude))


@pytest.mark.parametrize("payload", [
    {"provider": "cos", "bucket": "b-1250000000", "region": "r", "key": "k", "days": True},
    {"provider": "cos", "bucket": "b-1250000000", "region": "r", "key": "k", "days": "5"},
    {"provider": "cos", "bucket": "b-1250000000", "region": "r", "key": "k", "days": 5.0},
    {"provider": "cos", "bucket": "b-1250000000", "region": "r", "key": "k", "days": 1,
     "Days": 1},
    {"bucket": "b-1250000000", "region": "r", "key": "k", "days": 1,
     "RestoreRequest": {"Days": 1}},
    {"bucket": "b-1250000000", "region": "r", "key": "k", "RestoreRequest": {"Days": 1},
     "CASJobParameters": {"Tier": "Bulk"}, "tier": "Bulk"},
    {"bucket": "b-1250000000", "region": "r", "key": "k",
     "RestoreRequest": {"Days": 1, "Extra": 1}},
    {"provider": "gcs", "bucket": "bkt", "object": "o", "name": "o"},
    {"provider": "gcs", "bucket": "bkt", "object": "o", "generation": "\u0661\u0662"},
    {"provider": "gcs", "bucket": "bkt", "object": "o", "copySourceAcl": 1},
    {"provider": "gcs", "bucket": "bkt", "object": "o", "generation": 2**64},
    {"provider": "gcs", "bucket": "bkt", "object": "o", "callback_url": "https://h/a/../b"},
    {"provider": "gcs", "bucket": "bkt", "object": "o", "callback_url": "https://0x7f.1/"},
    {"provider": "gcs", "bucket": "bkt", "object": "o", "callback_url": "https://u@h/"},
    {"provider": "gcs", "bucket": "bkt", "object": "o", "callback_url": "https://xn--p1ai/"},
    {"provider": "gcs", "bucket": "bkt", "object": "o", "callback_url": "https://h/%zz"},
    {"provider": "gcs", "bucket": "bkt", "object": "o", "callback_url": "https://h:0443/"},
    {"provider": "gcs", "bucket": "bkt", "object": "o", "context": {b"k": 1}},
    {"provider": "gcs", "bucket": "bkt", "object": "o", "ifGenerationMatch": 5},
    {"provider": None, "bucket": "bkt", "object": "o"},
    {"provider": "gcs", "bucket": "bkt", "object": "o", "request_id": None},
])
def test_unusual_payloads_are_left_to_the_model(payload: dict[str, Any]) -> None:
    assert fast_parse(payload) is None


# -- coverage: the common shapes take the fast path -----------------------------------------
COMMON_COS: list[dict[str, Any]] = [
    {"provider": "cos", "bucket": "archive-1250000000", "region": "ap-guangzhou",
     "key": "a/b.bin", "days": 1, "tier": "Expedited"},
    {"bucket": "archive-1250000000", "region": "ap-guangzhou", "key": "k", "days": 7},
    {"Bucket": "archive-1250000000", "Region": "ap-guangzhou", "Key": "k", "Days": 3,
     "Tier": "Bulk", "VersionId": "MTg0NDUxNTc1NjIzMTQ1MDAwODg", "RequestId": "r-1"},
    {"Bucket": "archive-1250000000", "Region": "ap-guangzhou", "Key": "k",
     "RestoreRequest": {"Days": 2, "CASJobParameters": {"Tier": "Standard"}}},
    {"Bucket": "archive-1250000000", "Region": "ap-guangzhou", "Key": "k",
     "RestoreRequest": {"Days": 2}, "CASJobParameters": {"Tier": "Bulk"}},
    {"Bucket": "archive-1250000000", "Region": "ap-guangzhou", "Key": "k", "Days": 2,
     "CASJobParameters": {"Tier": "Expedited"}},
    {"Bucket": "archive-1250000000", "Region": "ap-guangzhou", "Key": "k", "Days": 2,
     "RestoreRequest": {"CASJobParameters": {"Tier": "Expedited"}}},
    {"provider": "cos", "bucket": "archive-1250000000", "region": "ap-beijing", "key": "k",
     "days": 365, "versionId": "v1", "requestId": "wf-42/step:1@x",
     "callback_url": "https://hooks.example.com/restore?token=abc",
     "context": {"ticket": "OPS-1", "nested": {"list": [1, "two", None, True, 1.5]}}},
    {"provider": "cos", "bucket": "archive-1250000000", "region": "ap-guangzhou", "key": "k",
     "days": 1, "version_id": None, "callback_url": None, "context": None},
]
COMMON_GCS: list[dict[str, Any]] = [
    {"provider": "gcs", "bucket": "restore-demo", "object": "golden/a.txt"},
    {"bucket": "restore-demo", "name": "a/b/c.txt", "generation": 1700000000123456},
    {"bucket": "restore-demo", "object_name": "x", "generation": "1700000000123456",
     "copySourceAcl": True, "projection": "full"},
    {"bucket": "restore-demo", "object": "o", "ifGenerationMatch": "0", "projection": "noAcl"},
    {"bucket": "restore-demo", "object": "o", "ifGenerationMatch": 17,
     "ifMetagenerationMatch": 2, "allowOverwrite": True, "restoreToken": "tok"},
    {"provider": "gcs", "bucket": "restore-demo", "object": "o", "allow_overwrite": True,
     "copy_source_acl": False, "request_id": "golden-1", "callbackUrl": "http://10.0.0.5:8080/cb",
     "context": {"a": [1, {"b": None}]}},
    {"provider": "gcs", "bucket": "restore-demo", "object": "o", "if_generation_not_match": 3,
     "if_metageneration_not_match": 4, "allow_overwrite": True, "generation": None},
]
PLAIN_URLS = [
    ("https://hooks.example.com/restore", "https://hooks.example.com/restore"),
    ("https://hooks.example.com", "https://hooks.example.com/"),
    ("https://Hooks.Example.COM/Path", "https://hooks.example.com/Path"),
    ("https://hooks.example.com:443/x", "https://hooks.example.com/x"),
    ("http://hooks.example.com:80", "http://hooks.example.com/"),
    ("http://localhost:8080/cb?a=1&b=2#f", "http://localhost:8080/cb?a=1&b=2#f"),
    ("https://10.0.0.1:8443/hook/", "https://10.0.0.1:8443/hook/"),
    ("https://h.example.com/a%20b/~user/", "https://h.example.com/a%20b/~user/"),
    ("HTTPS://Hooks.Example.com:8443", "https://hooks.example.com:8443/"),
]


@pytest.mark.parametrize("payload", COMMON_COS + COMMON_GCS)
def test_common_payloads_take_the_fast_path(payload: dict[str, Any]) -> None:
    assert check_agreement(payload) is not None


@pytest.mark.parametrize(("url", "normalised"), PLAIN_URLS)
def test_plain_callback_urls_take_the_fast_path(url: str, normalised: str) -> None:
    request = check_agreement({**COMMON_GCS[0], "callback_url": url})
    assert request is not None
    assert request.callback_url == normalised


def _candidates(value: Any) -> list[dict[str, Any]]:
    """Every object inside an event: nested, in JSON strings, in base64 strings."""
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        found.append(value)
        for item in value.values():
            found.extend(_candidates(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_candidates(item))
    elif isinstance(value, str) and len(value) > 2:
        for decode in (lambda text: text, lambda text: base64.b64decode(text, validate=True)):
            try:
                decoded = json.loads(decode(value))
            except (ValueError, binascii.Error):
                continue
            if isinstance(decoded, dict | list):
                found.extend(_candidates(decoded))
    return found


def golden_requests() -> list[dict[str, Any]]:
    """The request payloads in tests/events that the model accepts."""
    valid = []
    for path in sorted(EVENTS.glob("*.json")):
        for candidate in _candidates(json.loads(path.read_text())):
            try:
                schemas.RESTORE_REQUEST_ADAPTER.validate_python(dict(candidate))
            except ValidationError:
                continue
            valid.append(candidate)
    return valid


def test_golden_event_requests_take_the_fast_path() -> None:
    requests = golden_requests()
    # COS and GCS seeds, GCS webhook, batch (2), Pub/Sub push and structured, API Gateway
    # plain and base64, CKafka, CMQ (3), timer (2)
    assert len(requests) >= 15, requests
    deferred = [payload for payload in requests if check_agreement(payload) is None]
    assert deferred == []


def test_a_pydantic_model_becomes_the_runtime_value() -> None:
    model = schemas.RESTORE_REQUEST_ADAPTER.validate_python(
        {**COMMON_GCS[0], "callback_url": "https://Example.com", "context": {"a": [1]}})
    request = parse_request(model)
    assert isinstance(request, GcsRestoreRequest)
    assert request.callback_url == "https://example.com/"
    assert request == from_model(model)
    assert parse_request(request) is request


def test_a_deferred_payload_still_gets_the_models_value() -> None:
    payload = {"provider": "cos", "bucket": "b-1250000000", "region": "r", "key": "k",
               "days": "5", "callback_url": "https://h/a/../b"}
    assert fast_parse(payload) is None
    request = parse_request(payload)
    assert isinstance(request, CosRestoreRequest)
    assert (request.days, request.callback_url) == (5, "https://h/b")


# -- the request path loads no pydantic -----------------------------------------------------
def test_a_valid_request_is_parsed_without_importing_pydantic() -> None:
    cos = {"provider": "cos", "bucket": "archive-1250000000", "region": "ap-guangzhou",
           "key": "k", "days": 1, "tier": "Expedited", "request_id": "cold-1",
           "callback_url": "https://hooks.example.com/x", "context": {"a": 1}}
    gcs = {"bucket": "restore-demo", "object": "o", "generation": "1700000000123456",
           "copySourceAcl": True}
    code = (
        "import shared.validation, sys;"
        f"shared.validation.parse_request({cos!r});"
        f"shared.validation.parse_request({gcs!r});"
        "assert not any(m == 'pydantic' or m.startswith('pydantic.') for m in sys.modules), "
        "sorted(m for m in sys.modules if m.startswith('pydantic'))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
