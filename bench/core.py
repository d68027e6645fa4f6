"""What every bench section shares: the row it reports, the options it runs with, the registry
that ``python -m bench`` walks, and the statistics (medians, paired differences).

A section is a function ``(ctx: BenchContext) -> list[Row]`` registered under a name:

    @section("bulk", order=30, help="COS bulk chunks: ...")
    def bulk(ctx: BenchContext) -> list[Row]:
        ...
        return [Row(section="bulk", name="...", ours=..., baseline=..., unit="s",
                    target=Target.ratio_at_most(1.2))]

``python -m bench --only bulk`` then runs it; its rows join the table and the JSON. A section
module registers itself on import: add it to ``SECTION_MODULES`` in ``bench/run.py``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

ROW_KEYS = ("name", "ours", "baseline", "ratio", "unit", "target", "ok")


@dataclass(frozen=True)
class Target:
    """What a row must satisfy: a ratio bound, an added-time bound or an absolute bound."""

    kind: str  # "ratio_at_most" | "ratio_at_least" | "added_at_most" | "ours_at_most" | ...
    limit: float
    text: str

    @classmethod
    def ratio_at_most(cls, limit: float) -> Target:
        return cls("ratio_at_most", limit, f"ratio <= {limit:g}")

    @classmethod
    def ratio_at_least(cls, limit: float) -> Target:
        """For throughput: ours / baseline must be at least ``limit``."""
        return cls("ratio_at_least", limit, f"ratio >= {limit:g}")

    @classmethod
    def added_at_most(cls, limit: float, unit: str) -> Target:
        return cls("added_at_most", limit, f"+{limit:g} {unit} at most")

    @classmethod
    def ours_at_most(cls, limit: float, unit: str) -> Target:
        return cls("ours_at_most", limit, f"<= {limit:g} {unit}")

    @classmethod
    def ours_at_least(cls, limit: float, unit: str) -> Target:
        return cls("ours_at_least", limit, f">= {limit:g} {unit}")

    def holds(self, row: Row) -> bool:
        if self.kind == "ratio_at_most":
            return row.ratio <= self.limit
        if self.kind == "ratio_at_least":
            return row.ratio >= self.limit
        if self.kind == "added_at_most":
            return row.added is not None and row.added <= self.limit
        if self.kind == "ours_at_least":
            return row.ours >= self.limit
        return row.ours <= self.limit


@dataclass
class Row:
    """One measured figure: ours against the baseline measured in the same run."""

    section: str
    name: str
    ours: float
    baseline: float
    unit: str
    target: Target
    # ours - baseline; for paired samples the median of the per-pair differences (more robust
    # than the difference of the medians), otherwise the plain difference.
    added: float | None = None
    samples: int = 0
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.added is None:
            self.added = self.ours - self.baseline

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline > 0 else float("inf")

    @property
    def ok(self) -> bool:
        return self.target.holds(self)

    def as_json(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "name": self.name,
            "ours": round(self.ours, 4),
            "baseline": round(self.baseline, 4),
            "ratio": round(self.ratio, 4),
            "added": round(float(self.added or 0.0), 4),
            "unit": self.unit,
            "target": self.target.text,
            "ok": self.ok,
            "samples": self.samples,
            "detail": self.detail,
        }


@dataclass
class BenchContext:
    """Options of one run, shared by every section."""

    quick: bool = False
    runs: int | None = None  # cold-start runs per side (default 21, quick 5)
    iterations: int | None = None  # warm iterations per side (default 300, quick 60)
    requests: int | None = None  # memory: restore requests per instance (default 1000)
    cos_objects: int | None = None  # bulk_cos: archived objects a run (5000, quick 300)
    gcs_objects: int | None = None  # bulk_gcs: soft-deleted objects a run (1000, quick 100)
    verbose: bool = True
    notes: list[str] = field(default_factory=list)

    def log(self, message: str) -> None:
        if self.verbose:
            print(f"  {message}", flush=True)

    @property
    def cold_runs(self) -> int:
        return self.runs or (5 if self.quick else 21)

    @property
    def warm_iterations(self) -> int:
        return self.iterations or (60 if self.quick else 300)

    @property
    def memory_requests(self) -> int:
        return self.requests or 1000

    @property
    def cos_bulk_objects(self) -> int:
        return self.cos_objects or (300 if self.quick else 5000)

    @property
    def gcs_bulk_objects(self) -> int:
        return self.gcs_objects or (100 if self.quick else 1000)


SectionFn = Callable[[BenchContext], list[Row]]


@dataclass(frozen=True)
class Section:
    name: str
    run: SectionFn
    order: int
    help: str


SECTIONS: dict[str, Section] = {}


def section(name: str, *, order: int, help: str) -> Callable[[SectionFn], SectionFn]:
    """Register a bench section under ``name`` (``--only name``); sections run by ``order``."""

    def register(fn: SectionFn) -> SectionFn:
        SECTIONS[name] = Section(name, fn, order, help)
        return fn

    return register


# -- statistics ------------------------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def paired_added(ours: Sequence[float], baseline: Sequence[float]) -> float:
    """Median of per-pair differences of interleaved samples."""
    return median([a - b for a, b in zip(ours, baseline, strict=True)])


def paired_ratio(ours: Sequence[float], baseline: Sequence[float]) -> float:
    """Median of per-pair ratios: insensitive to load that drifts slowly across a run."""
    return median([a / b for a, b in zip(ours, baseline, strict=True)])


def spread(values: Sequence[float]) -> dict[str, float]:
    """Quartiles, so a reader can judge the noise around a median."""
    ordered = sorted(values)
    if len(ordered) < 4:
        return {"min": ordered[0], "max": ordered[-1]}
    q1, _, q3 = statistics.quantiles(ordered, n=4)
    return {"min": round(ordered[0], 4), "p25": round(q1, 4), "p75": round(q3, 4),
            "max": round(ordered[-1], 4)}
