"""What one check measured: pass or fail, the value against its threshold, and the ids.

Failing sample and label ids are capped (:data:`ID_CAP`) with their total counts, so a
check that fails on 3M labels still gives a report that fits in the catalog and a
terminal, and says exactly how many failed. ``details`` holds what a person needs to see
why (per-problem counts, distributions); ``charts`` are the distributions the HTML
report draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from viewfinder.quality.context import QualityContext

ID_CAP = 100
"""Most failing sample (and label) ids a result lists; the counts are always exact."""


@dataclass(frozen=True)
class Chart:
    """A bar chart: ``series`` name → {category → value}. Several series are drawn as
    grouped bars (e.g. reference vs. current class proportions)."""

    title: str
    series: dict[str, dict[str, float]]
    unit: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "series": self.series, "unit": self.unit}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Chart:
        return cls(title=d["title"], series=d["series"], unit=d.get("unit", ""))


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one dataset version.

    Attributes:
        passed: the measured value is within the threshold.
        value: what was measured (a count, a share, a statistic).
        threshold: the limit it was compared with (``None`` where the check has none).
        message: one line a person reads first.
        sample_ids: failing sample ids, at most :data:`ID_CAP`, sorted.
        sample_count: how many samples failed in all.
        label_ids: failing label ids, at most :data:`ID_CAP`, sorted.
        label_count: how many labels failed in all.
        details: JSON-able facts behind the verdict (per-problem counts, classes).
        charts: distributions the check looked at, for the HTML report.
        applicable: False when there was nothing to measure (no reference version, no
            predictions to compare with): the report shows the check as skipped, with
            ``message`` saying why.
    """

    passed: bool
    value: float | int | None
    threshold: float | int | None
    message: str
    sample_ids: list[str] = field(default_factory=list)
    sample_count: int = 0
    label_ids: list[str] = field(default_factory=list)
    label_count: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    charts: list[Chart] = field(default_factory=list)
    applicable: bool = True

    @classmethod
    def not_applicable(cls, message: str, threshold: float | None = None) -> CheckResult:
        """Nothing to measure; ``message`` says why (shown as a skipped check)."""
        return cls(passed=True, value=None, threshold=threshold, message=message, applicable=False)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "value": self.value, "threshold": self.threshold,
                "message": self.message, "sample_ids": self.sample_ids,
                "sample_count": self.sample_count, "label_ids": self.label_ids,
                "label_count": self.label_count, "details": self.details,
                "charts": [c.to_dict() for c in self.charts], "applicable": self.applicable}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckResult:
        return cls(passed=d["passed"], value=d["value"], threshold=d["threshold"],
                   message=d["message"], sample_ids=list(d["sample_ids"]),
                   sample_count=int(d["sample_count"]), label_ids=list(d["label_ids"]),
                   label_count=int(d["label_count"]), details=dict(d["details"]),
                   charts=[Chart.from_dict(c) for c in d.get("charts", [])],
                   applicable=bool(d.get("applicable", True)))


@dataclass(frozen=True)
class Failing:
    """Failing ids of one kind (samples or labels): the first :data:`ID_CAP` and the total."""

    ids: list[str]
    count: int

    @classmethod
    def empty(cls) -> Failing:
        return cls([], 0)

    @classmethod
    def of(cls, ids: set[str] | list[str]) -> Failing:
        unique = sorted(set(ids))
        return cls(unique[:ID_CAP], len(unique))


def failing_ids(ctx: QualityContext, sql: str, params: list[Any] | None = None, *,
                scope: str | None = None) -> Failing:
    """The distinct ``id`` values ``sql`` selects (capped, sorted) and how many there are.

    ``sql`` is a query over ``samples``, ``labels`` and ``{m}`` with one column ``id``.
    """
    t = ctx.sql(f"""WITH f AS (SELECT DISTINCT id FROM ({sql}) WHERE id IS NOT NULL)
        SELECT id, (SELECT count(*) FROM f) AS n FROM f ORDER BY id LIMIT {ID_CAP}""",
                params, filter=scope)
    if t.num_rows == 0:
        return Failing.empty()
    return Failing(t.column("id").to_pylist(), int(t.column("n")[0].as_py()))


def scoped_labels(scope: str | None, alias: str = "l") -> str:
    """SQL for the labels of the samples in scope (``{m}``), as relation ``alias``.

    Without a scope that is every label: no join (at 10M labels the join costs seconds).
    """
    if scope is None:
        return f"labels AS {alias}"
    return f"(SELECT l0.* FROM labels l0 SEMI JOIN {{m}} m0 ON l0.sample_id = m0.id) AS {alias}"
