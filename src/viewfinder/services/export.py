"""Export a version (optionally filtered) to a training format.

Deterministic: samples sorted by key, labels in a fixed order (``storage.reader``), so
the same version exported twice gives identical files. The export is written to a temporary sibling
folder and renamed into place, so a failed export never leaves a half-written folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viewfinder.errors import InvalidInput
from viewfinder.formats import registry
from viewfinder.formats.base import ExportItems, ExportTables, ImagesMode, ImageWriter
from viewfinder.services import versions as vs
from viewfinder.storage import reader
from viewfinder.storage.workspace import Workspace

Progress = Callable[[int, int], None]


@dataclass
class ExportResult:
    dataset: str
    version: str
    format: str
    out: str
    samples: int
    labels: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def collect_items(ws: Workspace, at: vs.DatasetAt, filter: str | None) -> ExportItems:
    """The samples to export with their labels, in export order (columns read once;
    ``ExportItem`` objects are built only for exporters that iterate them)."""
    samples, labels = reader.export_tables(ws, at, filter)
    return ExportItems(ExportTables(samples, labels))


def export(ws: Workspace, spec: str, format: str, out: str | Path, *, filter: str | None = None,
           images: str = "copy", progress: Progress | None = None) -> ExportResult:
    """Export ``spec`` (``NAME[@REF]``), optionally filtered, as ``format`` into ``out``.

    The version is read once as columns; images are placed and label files written on
    background threads while the exporter prepares the next files.

    Args:
        images: ``copy`` the images, ``link`` them (hard links to the local store, symbolic links where the file system refuses) or ``none``.
        progress: ``progress(images placed, images in the export)`` as images are placed.

    Raises:
        InvalidInput: an unknown or import-only format, ``link`` with a remote store, a
            non-empty ``out``, or data the format cannot hold (see the format's ``write``).
        StorageError: an image is missing from the store.
    """
    t0 = time.perf_counter()
    fmt = registry.get(format)
    if not fmt.can_export:
        raise InvalidInput(f"format {format!r} cannot be exported; export formats: "
                           f"{', '.join(registry.export_names())}")
    mode = ImagesMode(images)
    if mode is ImagesMode.LINK and ws.is_remote_store:
        raise InvalidInput("--images link needs a local object store; use copy")
    out = Path(out).resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInput(f"export folder {out} exists and is not empty", path=str(out))
    at = vs.resolve(ws, spec)
    items = collect_items(ws, at, filter)
    labels = items.tables.labels
    # the version's classes, then any other in export order (Arrow's unique keeps it)
    classes = list(dict.fromkeys([*at.version.summary.get("class_list", []),
                                  *labels.column("class_name").unique().to_pylist()]))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        total = len(items)
        writer = ImageWriter(ws.blobs.local_path, mode, background=True,
                             progress=(lambda n: progress(n, total)) if progress is not None else None)
        try:
            fmt.load().write(tmp, items, classes, writer)
        finally:
            writer.finish()
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(at.dataset.name, at.version.id, fmt.name, str(out), len(items),
                        labels.num_rows, time.perf_counter() - t0)
