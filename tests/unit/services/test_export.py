"""Exports an ML engineer trains on: deterministic, loadable, reproducible."""

from __future__ import annotations

import filecmp
import os
from pathlib import Path

import pytest
import yaml

from viewfinder import InvalidInput
from viewfinder.api import Workspace


@pytest.fixture
def street(ws: Workspace, coco_source: Path) -> Workspace:
    ws.import_source(coco_source, "street")
    ws.tag("street@main", "v1")
    return ws


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatch and not errors and all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_export_of_a_tag_is_byte_identical_even_after_later_edits(street: Workspace, tmp_path: Path, fmt: str) -> None:
    street.dataset("street@v1").export(fmt, tmp_path / "a")
    street.dataset("street").remap({"car": "vehicle"})
    street.dataset("street").tag_samples(None, add=["x"])
    street.dataset("street@v1").export(fmt, tmp_path / "b")
    assert _same_tree(tmp_path / "a", tmp_path / "b")


def test_coco_export_loads_in_pycocotools_with_every_box(street: Workspace, tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    res = street.dataset("street@v1").export("coco", tmp_path / "out")
    total = 0
    for f in sorted((tmp_path / "out" / "annotations").glob("instances_*.json")):
        coco = COCO(str(f))
        total += len(coco.getAnnIds())
        for img in coco.dataset["images"]:
            split = f.stem.split("_", 1)[1]
            assert (tmp_path / "out" / "images" / split / img["file_name"]).exists()
    assert total == res.labels == street.dataset("street@v1").stats()["labels"]


def test_yolo_export_has_an_ultralytics_data_yaml(street: Workspace, tmp_path: Path) -> None:
    street.dataset("street@v1").export("yolo", tmp_path / "y")
    data = yaml.safe_load((tmp_path / "y" / "data.yaml").read_text())
    assert data["nc"] == len(data["names"]) == 4
    assert (tmp_path / "y" / data["train"]).exists()


def test_filtered_export_and_image_modes(street: Workspace, tmp_path: Path) -> None:
    ds = street.dataset("street@v1")
    n = ds.count('label.class == "dog"')
    res = ds.export("coco", tmp_path / "dogs", filter='label.class == "dog"', images="link")
    assert res.samples == n
    imgs = [p for p in (tmp_path / "dogs" / "images").rglob("*") if p.is_file()]
    blobs = {p.name: p for p in (street._ws.path / "objects" / "blobs").rglob("*") if p.is_file()}
    # each image is the stored file itself (a hard link: same file system here), not a copy
    assert len(imgs) == n and all(p.stat().st_nlink >= 2 and not p.is_symlink() for p in imgs)
    assert all(any(os.path.samefile(p, b) for b in blobs.values()) for p in imgs)
    ds.export("coco", tmp_path / "noimg", images="none")
    assert not (tmp_path / "noimg" / "images").exists() or not any((tmp_path / "noimg" / "images").rglob("*.jpg"))


def test_export_refuses_a_non_empty_folder_and_unknown_formats(street: Workspace, tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="not empty"):
        street.dataset("street").export("coco", tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    with pytest.raises(InvalidInput, match="cannot be exported"):
        street.dataset("street").export("cvat", tmp_path / "c")


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_round_trip_keeps_every_sample_and_label(street: Workspace, tmp_path: Path, fmt: str) -> None:
    src = street.dataset("street@v1")
    src.export(fmt, tmp_path / "out")
    street.import_source(tmp_path / "out", "back", format=fmt)
    back = street.dataset("back")

    def content(view) -> list[tuple]:  # type: ignore[no-untyped-def]
        out = []
        for s in view.iter_samples():
            labs = sorted((lab.class_name, tuple(round(v, 3) for v in lab.bbox)) for lab in s.labels)
            out.append((s.key, s.content_hash, s.split, tuple(labs)))
        return sorted(out)

    assert content(back) == content(src)
