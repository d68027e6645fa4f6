"""COS request signatures (``q-sign-algorithm=sha1``), recomputed the way cos-python-sdk-v5 signs.

The SDK (``qcloud_cos/cos_auth.py``, 1.9.44) builds::

    HttpString   = method.lower() \\n path \\n params \\n headers \\n
    SignKey      = hex(HMAC-SHA1(SecretKey, KeyTime))
    StringToSign = "sha1\\n" KeyTime "\\n" sha1hex(HttpString) "\\n"
    Signature    = hex(HMAC-SHA1(SignKey, StringToSign))

where ``path`` is the *decoded* object key with a leading ``/`` and ``params`` / ``headers`` are
``k=v`` pairs joined by ``&``, sorted, with keys lower-cased and keys and values percent-encoded
with only ``-_.~`` left alone. The names signed are listed in ``q-header-list`` and
``q-url-param-list``; the server looks those names up in the request it received.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

REQUIRED_FIELDS = (
    "q-sign-algorithm",
    "q-ak",
    "q-sign-time",
    "q-key-time",
    "q-header-list",
    "q-url-param-list",
    "q-signature",
)


def encode(value: str) -> str:
    """Percent-encode as the SDK does: UTF-8, only ``-_.~`` and alphanumerics left alone."""
    return quote(value.encode("utf-8"), safe="-_.~")


@dataclass(frozen=True)
class Authorization:
    algorithm: str
    access_key: str
    sign_time: tuple[int, int]
    key_time: str
    header_list: tuple[str, ...]
    url_param_list: tuple[str, ...]
    signature: str


def parse_authorization(fields: Mapping[str, str]) -> Authorization:
    """Build an Authorization from its ``q-*`` fields; ValueError if any is missing or bad."""
    missing = [name for name in REQUIRED_FIELDS if name not in fields]
    if missing:
        raise ValueError(f"authorization lacks {', '.join(missing)}")
    algorithm = fields["q-sign-algorithm"].lower()
    if algorithm != "sha1":
        raise ValueError(f"unsupported q-sign-algorithm {fields['q-sign-algorithm']!r}")
    start, sep, end = fields["q-sign-time"].partition(";")
    if not sep:
        raise ValueError("q-sign-time must be <start>;<end>")
    try:
        sign_time = (int(start), int(end))
    except ValueError:
        raise ValueError("q-sign-time must hold two integers") from None

    def names(value: str) -> tuple[str, ...]:
        return tuple(n for n in value.split(";") if n)

    return Authorization(
        algorithm=algorithm,
        access_key=fields["q-ak"],
        sign_time=sign_time,
        key_time=fields["q-key-time"],
        header_list=names(fields["q-header-list"]),
        url_param_list=names(fields["q-url-param-list"]),
        signature=fields["q-signature"].lower(),
    )


def split_header(value: str) -> dict[str, str]:
    """Split an ``Authorization`` header value (``k=v&k=v``, values not encoded) into fields."""
    fields: dict[str, str] = {}
    for part in value.strip().split("&"):
        name, sep, val = part.partition("=")
        if sep:
            fields[name.strip()] = val.strip()
    return fields


def canonical_pairs(
    wanted: Iterable[str], available: Iterable[tuple[str, str]]
) -> tuple[str, list[str]]:
    """Render the signed ``k=v&...`` part for the names in ``wanted``.

    ``available`` holds the (name, decoded value) pairs of the request. Returns the rendering and
    the wanted names the request does not carry.
    """
    index: dict[str, str] = {}
    for name, value in available:
        index.setdefault(encode(name).lower(), encode(value))
    pairs: list[tuple[str, str]] = []
    missing: list[str] = []
    for name in wanted:
        key = name.lower()
        if key in index:
            pairs.append((key, index[key]))
        else:
            missing.append(name)
    return "&".join(f"{k}={v}" for k, v in sorted(pairs)), missing


def http_string(method: str, path: str, params: str, headers: str) -> str:
    return f"{method.lower()}\n{path}\n{params}\n{headers}\n"


def string_to_sign(key_time: str, http: str) -> str:
    return f"sha1\n{key_time}\n{hashlib.sha1(http.encode('utf-8')).hexdigest()}\n"


def compute_signature(secret_key: str, key_time: str, to_sign: str) -> str:
    sign_key = hmac.new(secret_key.encode(), key_time.encode(), hashlib.sha1).hexdigest()
    return hmac.new(sign_key.encode(), to_sign.encode(), hashlib.sha1).hexdigest()
