"""Schema: every label's class is in the label schema, with its required attributes
present and of the declared type.

Example suite entry::

    - name: labels follow the schema
      check: schema
      params:
        classes: [car, person]
        kinds: [box]
        attributes:
          occluded: {type: bool}
          make: {type: str, required: false, values: [audi, fiat]}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from viewfinder.quality.checks import CheckConfig, MetadataOnly
from viewfinder.quality.checks.result import Chart, CheckResult, Failing, scoped_labels
from viewfinder.quality.context import QualityContext

JsonType = Literal["str", "int", "float", "bool"]
# json_type() names a value's JSON type; an int is also a valid float
JSON_TYPES: dict[str, tuple[str, ...]] = {
    "str": ("VARCHAR",), "int": ("BIGINT", "UBIGINT"), "float": ("DOUBLE", "BIGINT", "UBIGINT"),
    "bool": ("BOOLEAN",),
}


def json_path(field: str) -> str:
    """A DuckDB JSON path for a (dotted) field name, each part quoted."""
    return "$" + "".join('."' + p.replace("\\", "\\\\").replace('"', '\\"') + '"'
                         for p in field.split("."))


class AttributeRule(CheckConfig):
    type: JsonType | None = None
    required: bool = True
    values: list[str | int | float | bool] | None = None


class SchemaConfig(CheckConfig):
    classes: list[str] | None = Field(
        None, description="The label schema's classes (default: the version's class list).")
    kinds: list[Literal["classification", "box", "polygon", "mask", "keypoints"]] | None = Field(
        None, description="Allowed label kinds (default: any).")
    attributes: dict[str, AttributeRule] = Field(default_factory=dict)
    max_failing: int = Field(0, ge=0, description="Labels that may break the schema.")


class SchemaCheck(MetadataOnly):
    name = "schema"
    Config = SchemaConfig
    description = "every label's class is in the schema; required attributes present and typed"

    def run(self, ctx: QualityContext, config: SchemaConfig, scope: str | None) -> CheckResult:
        classes = config.classes if config.classes is not None else list(
            ctx.version.summary.get("class_list") or ctx.classes)
        problems: dict[str, tuple[str, list[Any]]] = {
            "unknown class": ("NOT list_contains(?, class_name)", [classes])}
        if config.kinds is not None:
            problems["kind not allowed"] = ("NOT list_contains(?, kind)", [list(config.kinds)])
        for attr, rule in config.attributes.items():
            path = json_path(attr)
            t = "json_type(coalesce(attributes, '{}'), ?)"
            if rule.required:
                problems[f"attribute {attr} missing"] = (f"{t} IS NULL OR {t} = 'NULL'", [path, path])
            if rule.type is not None:
                problems[f"attribute {attr} not {rule.type}"] = (
                    f"{t} IS NOT NULL AND {t} <> 'NULL' AND NOT list_contains(?, {t})",
                    [path, path, list(JSON_TYPES[rule.type]), path])
            if rule.values is not None:
                problems[f"attribute {attr} not an allowed value"] = (
                    (f"{t} IS NOT NULL AND {t} <> 'NULL' AND NOT list_contains(?, "
                     "json_extract(coalesce(attributes, '{}'), ?)::VARCHAR)"),
                    [path, path, [_json(v) for v in rule.values], path])
        flags = ", ".join(f"({cond}) AS p{i}" for i, (cond, _) in enumerate(problems.values()))
        where = " OR ".join(f"({cond})" for cond, _ in problems.values())
        params = [p for _, ps in problems.values() for p in ps]
        bad = ctx.sql(f"SELECT l.id, l.sample_id, {flags} FROM {scoped_labels(scope)} WHERE {where}",
                      params + params, filter=scope)
        per_problem: dict[str, int] = {}
        for i, problem in enumerate(problems):
            if (k := sum(1 for v in bad.column(f"p{i}").to_pylist() if v)):
                per_problem[problem] = k
        labels = Failing.of(bad.column("id").to_pylist())
        samples = Failing.of(bad.column("sample_id").to_pylist())
        unknown = ctx.sql(f"SELECT class_name AS k, count(*) AS n FROM {scoped_labels(scope)} "
                          "WHERE NOT list_contains(?, class_name) GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 50",
                          [classes], filter=scope).to_pylist()
        passed = labels.count <= config.max_failing
        msg = (f"{labels.count} label(s) break the schema: "
               + ", ".join(f"{k} ({n})" for k, n in per_problem.items())) if labels.count else \
            f"every label follows the schema ({len(classes)} classes)"
        charts = [Chart("labels breaking the schema", {"labels": {k: float(v) for k, v in per_problem.items()}})] \
            if per_problem else []
        return CheckResult(
            passed=passed, value=labels.count, threshold=config.max_failing, message=msg,
            sample_ids=samples.ids, sample_count=samples.count, label_ids=labels.ids,
            label_count=labels.count,
            details={"problems": per_problem, "unknown_classes": {r["k"]: r["n"] for r in unknown},
                     "schema_classes": classes},
            charts=charts)


def _json(v: str | float | bool) -> str:
    import json

    return json.dumps(v)


CHECK = SchemaCheck()
