"""Builders shared by the format tests: tiny real images, export items, tree snapshots.

Import with ``from builders import ...`` (pytest puts this folder on ``sys.path``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from PIL import Image

from viewfinder.core.types import SourceDataset, SourceLabel
from viewfinder.formats.base import ExportItem, ImagesMode, ImageWriter, image_size

from tests.peer import PEER  # noqa: F401  (re-exported to the format tests)


def make_image(path: Path, size: tuple[int, int] = (40, 30), color: tuple[int, int, int] = (90, 120, 200),
               exif_orientation: int | None = None) -> Path:
    """Write a small real image (format from the extension); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", size, color)
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        im.save(path, exif=exif)
    else:
        im.save(path)
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def export_items(ds: SourceDataset, mode: ImagesMode = ImagesMode.COPY) -> tuple[list[ExportItem], ImageWriter]:
    """``ExportItem``s for everything ``ds`` read, as storage would hand them to an exporter.

    The content hash is a made-up string mapped back to the source file; width and height
    are filled from the image header when the format did not state them.
    """
    paths: dict[str, str] = {}
    items = []
    for i, sample in enumerate(ds.samples):
        content_hash = f"hash{i:04d}"
        if sample.path is not None:
            paths[content_hash] = sample.path
            if not sample.width or not sample.height:
                sample.width, sample.height = image_size(sample.path)
        items.append(ExportItem(sample, content_hash))
    return items, ImageWriter(paths.__getitem__, mode)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative POSIX path → bytes); folders as ``b"<dir>"``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for d in dirnames:
            p = Path(dirpath) / d
            out[p.relative_to(folder).as_posix() + "/"] = b"<dir>"
        for f in filenames:
            p = Path(dirpath) / f
            out[p.relative_to(folder).as_posix()] = p.read_bytes()
    return out


def label_view(label: SourceLabel) -> tuple[Any, ...]:
    """A comparable, hashable view of a label (everything a format may carry)."""
    return (label.kind.value, label.class_name,
            tuple(label.bbox) if label.bbox is not None else None,
            _canonical(label.polygon), _canonical(label.mask), _canonical(label.keypoints),
            label.iscrowd, _canonical(label.attributes))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def dataset_view(ds: SourceDataset) -> dict[str, tuple[str | None, list[tuple[Any, ...]]]]:
    """key → (split, sorted label views): what a round trip must keep."""
    return {s.key: (s.split, sorted(map(label_view, s.labels), key=repr)) for s in ds.samples}
