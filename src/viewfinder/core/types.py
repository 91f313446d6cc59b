"""Domain types shared by every layer.

A *source* (what an importer reads) is a list of :class:`SourceSample`, each with its
:class:`SourceLabel` list. Storage turns them into rows of the ``samples`` and ``labels``
tables (see ``viewfinder.storage.tables``); exporters read those rows back as the same
types, so import → export → import compares like with like.

Geometry conventions (the same everywhere, as in COCO): pixel coordinates, origin at the
top-left corner of the top-left pixel, boxes as ``(x, y, w, h)``; polygons as a list of
rings, each a flat ``[x0, y0, x1, y1, ...]`` list; masks as COCO RLE
``{"size": [h, w], "counts": str}``; keypoints as flat ``[x, y, v, ...]`` triples.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class LabelKind(str, enum.Enum):
    """What geometry a label carries."""

    CLASSIFICATION = "classification"
    BOX = "box"
    POLYGON = "polygon"
    MASK = "mask"
    KEYPOINTS = "keypoints"


GROUND_TRUTH = "ground_truth"
"""The ``source`` of labels that are annotations, not model predictions."""


@dataclass(slots=True)
class SourceLabel:
    """One label as read from (or written to) a format."""

    kind: LabelKind
    class_name: str
    bbox: tuple[float, float, float, float] | None = None
    polygon: list[list[float]] | None = None
    mask: dict[str, Any] | None = None
    keypoints: list[float] | None = None
    iscrowd: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)
    source_id: str | None = None
    """The label's id in its format (COCO annotation id, CVAT shape index...), if any."""
    score: float | None = None
    source: str = GROUND_TRUTH


@dataclass(slots=True)
class SourceSample:
    """One image and its labels as read from a source folder.

    ``key`` is the image path relative to the source root, in POSIX form: it is the
    sample's identity within the dataset. ``path`` is the absolute path of the image file,
    already checked to lie inside the source root; ``None`` when the format names an image
    that is not there (a problem the importer reports).
    """

    key: str
    path: str | None
    labels: list[SourceLabel] = field(default_factory=list)
    split: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    width: int | None = None
    height: int | None = None
    """Size stated by the annotation file, if any (checked against the image header)."""


@dataclass
class SourceDataset:
    """What an importer returns: samples, the class list in the format's order, problems."""

    samples: list[SourceSample]
    classes: list[str]
    problems: list["Problem"] = field(default_factory=list)
    format: str = ""


from viewfinder.errors import Problem  # noqa: E402  (re-export for importers)

__all__ = ["GROUND_TRUTH", "LabelKind", "Problem", "SourceDataset", "SourceLabel", "SourceSample"]
