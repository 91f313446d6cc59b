"""Estimated label-error rate: the share of labels the label-error detectors flag.

``detector: auto`` picks ``label_errors_classification`` when the version has
classification labels and ``label_errors_detection`` when it has boxes (both when it has
both). Detectors read pixels or embeddings (or a model's imported predictions), so this
check is skipped when a suite runs without pixels. Example suite entry::

    - name: few label errors
      check: label_errors
      severity: warning
      params: {max_rate: 0.02, min_score: 0.5}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from viewfinder.quality.checks import CheckConfig
from viewfinder.quality.checks.result import Chart, CheckResult, Failing, scoped_labels
from viewfinder.quality.context import QualityContext

DETECTORS = {"classification": "label_errors_classification", "box": "label_errors_detection"}


class LabelErrorsConfig(CheckConfig):
    max_rate: float = Field(0.05, ge=0, le=1, description="Largest estimated label-error rate.")
    min_score: float = Field(0.0, ge=0, le=1, description="Count findings scoring at least this.")
    detector: Literal["auto", "classification", "detection"] = "auto"
    detector_params: dict[str, Any] = Field(default_factory=dict,
                                            description="Parameters passed to the detector.")


class LabelErrorsCheck:
    name = "label_errors"
    Config = LabelErrorsConfig
    needs_pixels = True
    description = "estimated label-error rate (from the label-error detectors) below a threshold"

    def without_pixels(self, config: LabelErrorsConfig) -> None:
        return None

    @staticmethod
    def _has_predictions(ctx: QualityContext, scope: str | None) -> bool:
        t = ctx.sql(f"SELECT count(*) AS n FROM {scoped_labels(scope)} WHERE l.kind = 'box' "
                    "AND coalesce(l.source, 'ground_truth') <> 'ground_truth'", filter=scope)
        return int(t.column("n")[0].as_py()) > 0

    def run(self, ctx: QualityContext, config: LabelErrorsConfig, scope: str | None) -> CheckResult:
        from viewfinder.quality import detectors

        kinds = {r["kind"]: int(r["n"]) for r in ctx.sql(
            f"SELECT l.kind, count(*) AS n FROM {scoped_labels(scope)} "
            "WHERE coalesce(l.source, 'ground_truth') = 'ground_truth' GROUP BY 1", filter=scope).to_pylist()}
        wanted = {"classification": ["classification"], "detection": ["box"]}.get(
            config.detector, [k for k in DETECTORS if kinds.get(k)])
        if config.detector == "auto" and "box" in wanted and not self._has_predictions(ctx, scope):
            wanted.remove("box")   # box label errors are found against a model's predictions
            if not wanted:
                return CheckResult.not_applicable(
                    "not estimated: box label errors are found against a model's predictions, and "
                    "this version has none (viewfinder import-predictions)", config.max_rate)
        total = sum(kinds.get(k, 0) for k in wanted)
        if not total:
            return CheckResult.not_applicable("no classification or box labels to estimate errors on",
                                              config.max_rate)
        flagged: dict[str, str] = {}   # label id -> sample id
        per_detector: dict[str, int] = {}
        for kind in wanted:
            name = DETECTORS[kind]
            found = [f for f in detectors.run(ctx, name, config.detector_params)
                     if f.label_id is not None and f.score >= config.min_score]
            per_detector[name] = len(found)
            flagged.update({f.label_id: f.sample_id for f in found if f.label_id is not None})
        if flagged:  # only labels in scope count
            rows = ctx.sql(f"SELECT l.id, l.sample_id FROM {scoped_labels(scope)} WHERE list_contains(?, l.id)",
                           [sorted(flagged)], filter=scope).to_pylist()
            flagged = {r["id"]: r["sample_id"] for r in rows}
        rate = len(flagged) / total
        labels, samples = Failing.of(list(flagged)), Failing.of(list(flagged.values()))
        return CheckResult(
            passed=rate <= config.max_rate, value=round(rate, 6), threshold=config.max_rate,
            message=f"estimated label-error rate {rate:.2%} ({len(flagged)} of {total} labels; "
                    f"max {config.max_rate:.2%})",
            sample_ids=samples.ids, sample_count=samples.count, label_ids=labels.ids,
            label_count=labels.count, details={"labels": total, "flagged": len(flagged),
                                               "by_detector": per_detector},
            charts=[Chart("labels flagged per detector", {"labels": {k: float(v) for k, v in per_detector.items()}})])


CHECK = LabelErrorsCheck()
