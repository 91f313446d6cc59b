"""Export a version (optionally filtered) to a training format.

Deterministic: samples sorted by key, labels in a fixed order, so the same version
exported twice gives identical files. The export is written to a temporary sibling
folder and renamed into place, so a failed export never leaves a half-written folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viewfinder.errors import InvalidInput
from viewfinder.formats import registry
from viewfinder.formats.base import ExportItem, ImagesMode, ImageWriter
from viewfinder.services import versions as vs
from viewfinder.services import look
from viewfinder.storage import rows
from viewfinder.storage.workspace import Workspace


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


def collect_items(ws: Workspace, at: vs.DatasetAt, filter: str | None) -> list[ExportItem]:
    """The samples to export with their labels, in export order."""
    return [ExportItem(rows.sample_from_row(s, labs), s["content_hash"])
            for s, labs in look.samples_with_labels(ws, at, filter)]


def export(ws: Workspace, spec: str, format: str, out: str | Path, *, filter: str | None = None,
           images: str = "copy") -> ExportResult:
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
    classes = list(at.version.summary.get("class_list", []))
    seen = set(classes)
    for it in items:
        for lab in it.sample.labels:
            if lab.class_name not in seen:
                seen.add(lab.class_name)
                classes.append(lab.class_name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        writer = ImageWriter(ws.blobs.local_path, mode, background=True)
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
                        sum(len(i.sample.labels) for i in items), time.perf_counter() - t0)
