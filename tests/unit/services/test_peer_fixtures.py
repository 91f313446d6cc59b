"""Datasets written by other tools (Datumaro's test assets) go through the whole
pipeline: auto-detected, imported as a version, exported, imported back unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.peer import PEER
from viewfinder import ImportFailed
from viewfinder.api import Workspace

pytestmark = pytest.mark.skipif(not PEER.exists(), reason="peer fixtures not present")

# (folder under peer/datumaro, format auto-detection must find, samples, problems expected)
CASES = [
    ("coco_dataset/coco_instances", "coco", 2, 0),
    ("coco_dataset/coco", "coco", 2, 0),
    ("yolo_dataset/strict", "yolo", 1, 0),
    ("yolo_dataset/labels", "yolo", 2, 0),
    ("yolo_dataset/annotations", "yolo", 1, 0),
    ("voc_dataset/voc_dataset1", "voc", 2, 0),
    ("voc_dataset/voc_dataset3", "voc", 1, 0),
    ("imagenet_dataset", "imagefolder", 4, 0),
    ("cvat_dataset/for_images/export_project", "cvat", 6, 0),
    # two shapes in this export have an empty label: reported, the rest imports with skip
    ("cvat_dataset/for_images/export_task", "cvat", 2, 2),
]
EXPORT_AS = {"coco": "coco", "yolo": "yolo", "voc": "voc", "imagefolder": "imagefolder", "cvat": "coco"}


@pytest.mark.parametrize(("folder", "fmt", "n_samples", "n_problems"), CASES, ids=[c[0] for c in CASES])
def test_peer_dataset_imports_and_round_trips(ws: Workspace, tmp_path: Path, folder: str, fmt: str,
                                              n_samples: int, n_problems: int) -> None:
    res = ws.import_source(PEER / folder, "peer", on_error="skip" if n_problems else "fail")
    assert res.format == fmt and res.samples == n_samples and len(res.skipped) == n_problems
    original = ws.dataset("peer")
    target = EXPORT_AS[fmt]
    original.export(target, tmp_path / "out")
    ws.import_source(tmp_path / "out", "back", format=target)

    def content(view) -> list[tuple]:  # type: ignore[no-untyped-def]
        rows = []
        for s in view.iter_samples():
            labels = sorted((lab.kind.value, lab.class_name,
                             tuple(round(v, 2) for v in lab.bbox) if lab.bbox and lab.kind.value != "classification" else ())
                            for lab in s.labels if target != "yolo" or lab.kind.value != "classification")
            rows.append((s.content_hash, tuple(labels)))
        return sorted(rows)

    assert content(ws.dataset("back")) == content(original)


def test_voc_without_images_reports_every_missing_image(ws: Workspace) -> None:
    """voc_dataset2 has annotations but no JPEGImages folder: each image is named."""
    with pytest.raises(ImportFailed) as e:
        ws.import_source(PEER / "voc_dataset" / "voc_dataset2", "voc2")
    assert len(e.value.problems) == 5 and all("image" in p.message for p in e.value.problems)
    assert "voc2" not in ws.datasets() or len(ws.log("voc2")) == 1
