"""The format registry: explicit specs, nothing imported until used.

Each format is a :class:`FormatSpec` with an explicit ``name``, the module that implements
it, and whether it can import and export. A format module provides, as plain functions:

- ``detect(root: Path) -> bool`` — cheap look at file names/first bytes: is this my layout?
- ``read(root: Path, *, split: str | None = None) -> SourceDataset`` — importer (if
  ``can_import``). Never raises for bad records: every problem becomes a ``Problem``
  (file path relative to ``root``, record id, message) in ``SourceDataset.problems``, and
  the bad record is left out. Raises only ``InvalidInput`` if ``root`` is not a folder.
- ``write(out: Path, items: Sequence[ExportItem], classes: list[str], images: ImageWriter)``
  (``items`` may be a ``base.ExportItems``: columns, with items built on iteration)
  — exporter (if ``can_export``). Deterministic: the same input gives identical bytes.

Listing formats (``viewfinder import --help``) imports none of the modules.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from viewfinder.errors import FormatNotFound


@dataclass(frozen=True)
class FormatSpec:
    name: str
    module: str
    description: str
    can_import: bool = True
    can_export: bool = True
    streams_images: bool = False
    """``read`` takes ``images_found``, called with ``(key, path)`` of images as they are
    found, before the annotations are read (the import starts reading images early)."""

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


FORMATS: dict[str, FormatSpec] = {
    spec.name: spec
    for spec in (
        FormatSpec("coco", "viewfinder.formats.coco",
                   "COCO JSON: boxes, polygons, RLE masks (crowd), keypoints",
                   streams_images=True),
        FormatSpec("yolo", "viewfinder.formats.yolo",
                   "YOLO: Ultralytics data.yaml or Darknet obj.data/obj.names; boxes, segments"),
        FormatSpec("voc", "viewfinder.formats.voc",
                   "Pascal VOC XML: boxes with difficult/truncated/occluded flags"),
        FormatSpec("imagefolder", "viewfinder.formats.imagefolder",
                   "one folder per class (ImageNet style) for classification"),
        FormatSpec("cvat", "viewfinder.formats.cvat",
                   "CVAT for images 1.1 XML (task or project export)", can_export=False),
    )
}

DETECT_ORDER = ("cvat", "coco", "yolo", "voc", "imagefolder")
"""``auto`` tries formats in this order: the most specific layouts first."""


def get(name: str) -> FormatSpec:
    try:
        return FORMATS[name]
    except KeyError:
        raise FormatNotFound(f"unknown format {name!r}; known: {', '.join(FORMATS)}") from None


def detect(root: Path) -> FormatSpec:
    """The first format (in ``DETECT_ORDER``) whose ``detect`` accepts ``root``."""
    for name in DETECT_ORDER:
        spec = FORMATS[name]
        if spec.load().detect(root):
            return spec
    raise FormatNotFound(f"could not detect the format of {root}; pass --format", path=str(root))


def import_names() -> list[str]:
    return [n for n, s in FORMATS.items() if s.can_import]


def export_names() -> list[str]:
    return [n for n, s in FORMATS.items() if s.can_export]
