"""Detectors: one module per detector, each finding problems and returning findings.

A detector module defines a ``DETECTOR`` object with:

- ``name``: the explicit registry name (``"near_duplicates"``);
- ``Config``: a pydantic model of its parameters (defaults that work out of the box);
- ``needs_pixels``: whether it reads images or embeddings (a ``check`` at 10M labels can
  skip those);
- ``run(ctx, config) -> list[Finding]``.

The registry maps names to modules and imports a module only when it is used, so listing
detectors imports none of them. :func:`run` memoizes results on the context, so a check
that needs the near-duplicate groups and a scan that stores them pay once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol

from viewfinder.errors import InvalidInput

if TYPE_CHECKING:
    # only for types: listing detector names must not import pydantic (CLI start-up)
    from pydantic import BaseModel

    from viewfinder.quality.context import QualityContext
    from viewfinder.quality.findings import Finding


class Detector(Protocol):
    name: str
    Config: type[BaseModel]
    needs_pixels: bool
    description: str

    def run(self, ctx: QualityContext, config: Any) -> list[Finding]: ...


# name -> module under viewfinder.quality.detectors (each defines DETECTOR)
REGISTRY: dict[str, str] = {
    "exact_duplicates": "duplicates",
    "near_duplicates": "near_duplicates",
    "image_problems": "image_problems",
    "outliers": "outliers",
    "overlapping_annotations": "overlaps",
    "label_errors_classification": "label_errors_classification",
    "label_errors_detection": "label_errors_detection",
}


def names() -> list[str]:
    return sorted(REGISTRY)


def get(name: str) -> Detector:
    if name not in REGISTRY:
        raise InvalidInput(f"unknown detector {name!r}; known: {', '.join(names()) or 'none'}")
    mod = importlib.import_module(f"viewfinder.quality.detectors.{REGISTRY[name]}")
    det: Detector = mod.DETECTOR
    return det


def make_config(det: Detector, params: dict[str, Any] | None) -> BaseModel:
    """Validate user parameters; a misspelled option is an error, not ignored."""
    from pydantic import ValidationError

    try:
        return det.Config.model_validate(params or {})
    except ValidationError as e:
        raise InvalidInput(f"detector {det.name}: {e}") from None


def run(ctx: QualityContext, name: str, params: dict[str, Any] | None = None) -> list[Finding]:
    """Run one detector on the context (memoized per name and parameters)."""
    import json

    det = get(name)
    config = make_config(det, params)
    key = f"detector:{name}:{json.dumps(config.model_dump(mode='json'), sort_keys=True)}"
    result: list[Finding] = ctx.memo(key, lambda: det.run(ctx, config))
    return result
