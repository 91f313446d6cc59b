"""Metadata constraints: required sample metadata fields, their types, allowed values
and ranges. Field names may be dotted (``camera.model``) for nested objects.

Example suite entry::

    - name: metadata complete
      check: metadata
      params:
        fields:
          region: {values: [EU, APAC, NA]}
          exposure_ms: {type: float, min: 0.1, max: 100}
          operator: {required: false, type: str}
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, model_validator

from viewfinder.quality.checks import CheckConfig, MetadataOnly
from viewfinder.quality.checks.result import Chart, CheckResult, Failing
from viewfinder.quality.checks.schema import JSON_TYPES, JsonType, json_path
from viewfinder.quality.context import QualityContext


class FieldRule(CheckConfig):
    required: bool = True
    type: JsonType | None = None
    values: list[str | int | float | bool] | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _range(self) -> FieldRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class MetadataConfig(CheckConfig):
    fields: dict[str, FieldRule] = Field(default_factory=dict, description="Field name -> rule.")
    max_failing: int = Field(0, ge=0, description="Samples that may break a rule.")


def _conditions(fields: dict[str, FieldRule]) -> dict[str, tuple[str, list[Any]]]:
    out: dict[str, tuple[str, list[Any]]] = {}
    doc = "coalesce(m.metadata, '{}')"
    for name, rule in fields.items():
        p = json_path(name)
        t = f"json_type({doc}, ?)"
        present = f"({t} IS NOT NULL AND {t} <> 'NULL')"
        if rule.required:
            out[f"{name} missing"] = (f"NOT {present}", [p, p])
        if rule.type is not None:
            out[f"{name} not {rule.type}"] = (f"{present} AND NOT list_contains(?, {t})",
                                             [p, p, list(JSON_TYPES[rule.type]), p])
        if rule.values is not None:
            out[f"{name} not an allowed value"] = (
                f"{present} AND NOT list_contains(?, json_extract({doc}, ?)::VARCHAR)",
                [p, p, [json.dumps(v) for v in rule.values], p])
        numeric = f"list_contains(['BIGINT', 'UBIGINT', 'DOUBLE'], {t})"
        value = f"TRY_CAST(json_extract({doc}, ?)::VARCHAR AS DOUBLE)"
        if rule.min is not None:
            out[f"{name} below {rule.min:g}"] = (f"{numeric} AND {value} < ?", [p, p, rule.min])
        if rule.max is not None:
            out[f"{name} above {rule.max:g}"] = (f"{numeric} AND {value} > ?", [p, p, rule.max])
    return out


class MetadataCheck(MetadataOnly):
    name = "metadata"
    Config = MetadataConfig
    description = "required metadata fields present, typed, with allowed values and ranges"

    def run(self, ctx: QualityContext, config: MetadataConfig, scope: str | None) -> CheckResult:
        problems = _conditions(config.fields)
        if not problems:
            return CheckResult(passed=True, value=0, threshold=config.max_failing,
                               message="no metadata rules declared")
        flags = ", ".join(f"({cond}) AS p{i}" for i, (cond, _) in enumerate(problems.values()))
        where = " OR ".join(f"({cond})" for cond, _ in problems.values())
        params = [p for _, ps in problems.values() for p in ps]
        bad = ctx.sql(f"SELECT m.id, {flags} FROM {{m}} AS m WHERE {where}", params + params, filter=scope)
        per_problem: dict[str, int] = {}
        for i, problem in enumerate(problems):
            if (k := sum(1 for v in bad.column(f"p{i}").to_pylist() if v)):
                per_problem[problem] = k
        samples = Failing.of(bad.column("id").to_pylist())
        msg = (f"{samples.count} sample(s) break metadata rules: "
               + ", ".join(f"{k} ({n})" for k, n in per_problem.items())) if samples.count else \
            f"every sample's metadata follows the {len(config.fields)} rule(s)"
        return CheckResult(
            passed=samples.count <= config.max_failing, value=samples.count,
            threshold=config.max_failing, message=msg, sample_ids=samples.ids,
            sample_count=samples.count, details={"problems": per_problem},
            charts=[Chart("samples breaking metadata rules",
                          {"samples": {k: float(v) for k, v in per_problem.items()}})] if per_problem else [])


CHECK = MetadataCheck()
