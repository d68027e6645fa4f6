"""shared.records: the frozen dataclasses that replaced pydantic models on the cold path behave
like the dataclasses and models they stand in for (construction, immutability, equality, dumps
and read-backs), checked against the stdlib and pydantic themselves where they exist."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import TypeAdapter

from shared.events import build_event
from shared.outcome import ErrorCode, ErrorInfo, Outcome, OutcomeStatus
from shared.records import Record, Secret, frozen, record
from shared.validation import FieldProblem


@record
class Sample(Record):
    """A record with every kind of field the package uses."""

    name: str
    count: int = 0
    tags: list[str] = dataclasses.field(default_factory=list)
    seen: list[str] = dataclasses.field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "seen", [self.name])


@frozen
class Pair:
    left: int
    right: int = 2


@dataclasses.dataclass(frozen=True)
class StdPair:
    left: int
    right: int = 2


def test_construction_follows_the_dataclass_rules() -> None:
    sample = Sample(name="a")
    assert (sample.count, sample.tags, sample.seen) == (0, [], ["a"])
    assert Sample(name="b").tags is not sample.tags  # a fresh default per instance
    with pytest.raises(TypeError, match="missing required argument: 'name'"):
        Sample()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        Sample(name="a", colour="blue")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="positional"):
        Sample("a")  # type: ignore[misc]  # keyword-only
    with pytest.raises(TypeError, match="unexpected keyword argument 'seen'"):
        Sample(name="a", seen=["x"])  # type: ignore[call-arg]  # init=False


def test_frozen_classes_take_positional_arguments_like_a_frozen_dataclass() -> None:
    for cls in (Pair, StdPair):
        assert (cls(1).left, cls(1).right, cls(1, 3).right, cls(left=1, right=4).right) == (
            1, 2, 3, 4)
        with pytest.raises(TypeError):
            cls(1, 2, 3)  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            cls(1, left=1)  # type: ignore[misc]
    assert repr(Pair(1)) == repr(StdPair(1)).replace("StdPair", "Pair")


def test_instances_cannot_change_and_compare_by_value() -> None:
    pair = Pair(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pair.left = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del pair.left  # type: ignore[misc]
    assert pair == Pair(1) and pair != Pair(2) and hash(pair) == hash(Pair(1))
    assert pair != StdPair(1)  # another class is never equal, as with dataclasses
    assert dataclasses.replace(pair, right=9) == Pair(1, 9)
    assert Sample(name="a").model_copy(update={"count": 3}).count == 3


def _outcome() -> Outcome:
    return Outcome(
        request_id="r-1", provider="gcs", bucket="restore-b", key="k/é", generation=7,
        expiry_time=datetime(2026, 11, 21, 1, 2, 3, 456789, tzinfo=timezone.utc),
        expected_completion_after=datetime(2026, 11, 21, 9, tzinfo=timezone(timedelta(hours=8))),
        context={"ticket": None, "nested": {"x": [1, None]}},
        error=ErrorInfo(code=ErrorCode.THROTTLED, message="slow down", retryable=True,
                        fields=[FieldProblem(loc=["a", 0], field="a.0", reason="r", type="t")]),
        status=OutcomeStatus.FAILED, attempts=2,
    )


def test_json_dumps_are_what_pydantic_writes_for_the_same_class() -> None:
    outcome = _outcome()
    adapter: TypeAdapter[Outcome] = TypeAdapter(Outcome)
    assert json.loads(outcome.model_dump_json()) == json.loads(adapter.dump_json(outcome))
    assert outcome.model_dump(mode="json") == adapter.dump_python(outcome, mode="json")
    assert outcome.model_dump(mode="json", exclude_none=True) == adapter.dump_python(
        outcome, mode="json", exclude_none=True)
    event = build_event(outcome)
    assert json.loads(event.to_json()) == json.loads(
        TypeAdapter(type(event)).dump_json(event, exclude_none=True))


def test_python_dumps_keep_enums_and_datetimes_and_nest_records_as_dicts() -> None:
    dumped = _outcome().model_dump()
    assert dumped["status"] is OutcomeStatus.FAILED
    assert isinstance(dumped["expiry_time"], datetime)
    assert dumped["error"]["fields"][0] == {"loc": ["a", 0], "field": "a.0", "reason": "r",
                                            "type": "t"}
    assert set(_outcome().model_dump(include={"bucket", "key"})) == {"bucket", "key"}
    assert "status" not in _outcome().model_dump(exclude={"status"})


def test_a_record_reads_back_its_own_json() -> None:
    outcome = _outcome()
    assert Outcome.model_validate_json(outcome.model_dump_json()) == outcome


def test_secrets_print_masked_and_compare_with_pydantic_secrets() -> None:
    from pydantic import SecretStr

    secret = Secret("hunter2")
    shown: list[Any] = [repr(secret), str(secret), f"{secret}"]
    assert all("hunter2" not in text for text in shown)
    assert secret.get_secret_value() == "hunter2"
    assert secret == SecretStr("hunter2") and secret != Secret("other")
