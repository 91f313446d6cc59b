"""Checks: declarative data tests, one module per check.

A check module defines a ``CHECK`` object with:

- ``name``: the explicit registry name (``"geometry"``), the word used in suite files;
- ``Config``: a pydantic model of its parameters (``extra="forbid"``: a misspelled
  parameter is an error, not silently ignored), with defaults that suit most datasets;
- ``needs_pixels``: whether it may read images or embeddings with its default config;
- ``description``: one line for ``viewfinder check --list`` and the reports;
- ``without_pixels(config)``: the config to run when pixels are off (``None``: the check
  cannot run at all without them and is skipped);
- ``run(ctx, config, scope) -> CheckResult``: ``scope`` is a filter expression (or
  ``None``) naming the samples the check looks at; queries reach them as ``{m}``.

A check returns a result and never raises for bad data: failing is data. The registry
imports a module only when its check is used, so listing checks imports none of them.

Example:
    >>> from viewfinder.quality import checks
    >>> checks.names()[:3]
    ['class_balance', 'completeness', 'drift']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict

from viewfinder.errors import InvalidInput

if TYPE_CHECKING:
    from viewfinder.quality.checks.result import CheckResult
    from viewfinder.quality.context import QualityContext


class CheckConfig(BaseModel):
    """Base of every check's ``Config``: unknown parameters are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Check(Protocol):
    name: str
    Config: type[CheckConfig]
    needs_pixels: bool
    description: str

    def without_pixels(self, config: Any) -> Any | None: ...

    def run(self, ctx: QualityContext, config: Any, scope: str | None) -> CheckResult: ...


class MetadataOnly:
    """Mixin for checks that read only the tables (never pixels)."""

    needs_pixels = False

    def without_pixels(self, config: Any) -> Any | None:
        return config


# name -> module under viewfinder.quality.checks (each defines CHECK)
REGISTRY: dict[str, str] = {
    "schema": "schema",
    "geometry": "geometry",
    "image_integrity": "image_integrity",
    "completeness": "completeness",
    "class_balance": "class_balance",
    "split_hygiene": "split_hygiene",
    "duplicates": "duplicates",
    "metadata": "metadata",
    "drift": "drift",
    "label_errors": "label_errors",
}


def names() -> list[str]:
    return sorted(REGISTRY)


def get(name: str) -> Check:
    """The check registered as ``name``; an unknown name lists the known ones."""
    if name not in REGISTRY:
        raise InvalidInput(f"unknown check {name!r}; known: {', '.join(names())}")
    mod = importlib.import_module(f"viewfinder.quality.checks.{REGISTRY[name]}")
    check: Check = mod.CHECK
    return check
