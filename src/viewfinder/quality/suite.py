"""Check suites: a named list of checks, written in YAML and kept with the project.

A suite file::

    name: street-release
    checks:
      - name: boxes are sane            # unique within the suite; shown in every report
        check: geometry                 # a registered check (viewfinder check --list)
        severity: error                 # error (blocks a release) | warning | info
        filter: split == "val"          # optional scope: the samples the check looks at
        params: {min_size: 4}           # the check's parameters (unknown ones are errors)

Loading validates everything up front, each check's parameters included, and an error
names the file, the line and the key (``suite.yaml:7: checks[1].params.min_sise: extra
inputs are not permitted``). :func:`suite_hash` is the sha256 of the canonical suite
(parameters with their defaults filled in), so two spellings of one suite hash alike and
a report says exactly which suite it ran.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from viewfinder.errors import InvalidInput

Severity = Literal["error", "warning", "info"]


class CheckSpec(BaseModel):
    """One entry of a suite."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    check: str
    severity: Severity = "error"
    filter: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("check")
    @classmethod
    def _known(cls, v: str) -> str:
        from viewfinder.quality import checks

        if v not in checks.REGISTRY:
            raise ValueError(f"unknown check {v!r}; known: {', '.join(checks.names())}")
        return v

    @field_validator("filter")
    @classmethod
    def _parses(cls, v: str | None) -> str | None:
        from viewfinder.errors import FilterSyntaxError
        from viewfinder.storage.query import compile_filter

        if v is not None:
            try:
                compile_filter(v)
            except FilterSyntaxError as e:
                raise ValueError(str(e)) from None
        return v

    def config(self) -> Any:
        """The check's validated ``Config`` for these parameters."""
        from viewfinder.quality import checks

        check = checks.get(self.check)
        return check.Config.model_validate(self.params)


class Suite(BaseModel):
    """A named list of checks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    checks: list[CheckSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_and_valid(self) -> Suite:
        seen: set[str] = set()
        for spec in self.checks:
            if spec.name in seen:
                raise ValueError(f"two checks are named {spec.name!r}; names must be unique")
            seen.add(spec.name)
        return self

    def canonical(self) -> dict[str, Any]:
        """The suite with every check's parameters normalized (defaults filled in)."""
        return {"name": self.name, "description": self.description, "checks": [
            {"name": c.name, "check": c.check, "severity": c.severity, "filter": c.filter,
             "params": c.config().model_dump(mode="json")} for c in self.checks]}

    def to_yaml(self) -> str:
        import yaml

        doc = self.model_dump(mode="json", exclude_defaults=True)
        doc["checks"] = [c.model_dump(mode="json", exclude_defaults=True) | {"severity": c.severity}
                         for c in self.checks]
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def suite_hash(suite: Suite) -> str:
    """sha256 of the canonical suite (sorted keys, no spaces)."""
    text = json.dumps(suite.canonical(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _params_errors(suite: Suite) -> list[tuple[tuple[Any, ...], str]]:
    """Each check's parameter errors as (location in the document, message)."""
    out: list[tuple[tuple[Any, ...], str]] = []
    for i, spec in enumerate(suite.checks):
        try:
            spec.config()
        except ValidationError as e:
            for err in e.errors():
                out.append((("checks", i, "params", *err["loc"]), err["msg"]))
    return out


def parse_suite(text: str, source: str = "<suite>") -> Suite:
    """A suite from YAML text; errors name ``source``, the line and the key."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(e, "problem", None) or str(e)
        raise InvalidInput(f"{where}: not valid YAML: {problem}", path=source) from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{source}: a suite is a mapping with 'name' and 'checks'", path=source)
    try:
        suite = Suite.model_validate(doc)
        errors = _params_errors(suite)
    except ValidationError as e:
        errors = [(tuple(err["loc"]), err["msg"]) for err in e.errors()]
    if errors:
        lines = [f"{source}:{_line_of(node, loc)}: {_key(loc)}: {msg}" for loc, msg in errors]
        raise InvalidInput("invalid check suite:\n  " + "\n  ".join(lines), path=source)
    return suite


def load_suite(path: str | Path) -> Suite:
    """A suite from a YAML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"cannot read suite file {p}: {e}", path=str(p)) from None
    return parse_suite(text, str(p))


def _key(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def _line_of(node: Any, loc: tuple[Any, ...]) -> int:
    """The 1-based line of the deepest YAML node that ``loc`` reaches."""
    import yaml

    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        nxt = None
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == part), None)
            if nxt is None:  # an unexpected key: point at the key itself
                nxt = next((k for k, _ in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
        if nxt is None:
            break
        node, line = nxt, nxt.start_mark.line + 1
    return line


def default_suite(classes: list[str]) -> Suite:
    """The suite used when a dataset has none: sensible limits for most detection and
    classification datasets. ``classes`` is the label schema (the version's class list)."""
    return Suite(name="default", description="Viewfinder's default checks", checks=[
        CheckSpec(name="labels follow the schema", check="schema",
                  params={"classes": list(classes)} if classes else {}),
        CheckSpec(name="geometry is valid", check="geometry"),
        CheckSpec(name="images are usable", check="image_integrity"),
        CheckSpec(name="samples are labeled and split", check="completeness"),
        CheckSpec(name="classes are balanced", check="class_balance", severity="warning"),
        CheckSpec(name="no image shared across splits", check="split_hygiene"),
        CheckSpec(name="no duplicate images within a split", check="duplicates", severity="warning"),
        CheckSpec(name="no drift from the last release", check="drift", severity="warning"),
        CheckSpec(name="few label errors", check="label_errors", severity="warning"),
    ])
