"""Image-folder (ImageNet style) importer and exporter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from builders import PEER, export_items, make_image, tree, write_text

from viewfinder.core.types import LabelKind, SourceLabel, SourceSample
from viewfinder.formats import imagefolder, registry
from viewfinder.formats.base import ExportItem, ImagesMode, ImageWriter

IMAGENET_PEER = PEER / "imagenet_dataset"


@pytest.fixture
def peer() -> Path:
    if not IMAGENET_PEER.is_dir():
        pytest.skip(f"peer fixtures not found at {IMAGENET_PEER}")
    return IMAGENET_PEER


def classes_by_key(samples: list[SourceSample]) -> dict[str, list[str]]:
    return {s.key: [lb.class_name for lb in s.labels] for s in samples}


def test_reads_imagenet_peer(peer: Path) -> None:
    assert imagefolder.detect(peer)
    ds = imagefolder.read(peer)
    assert ds.problems == []
    assert ds.format == "imagefolder"
    assert ds.classes == ["label_0", "label_1"]
    assert classes_by_key(ds.samples) == {
        "label_0/label_0_1.jpg": ["label_0"],
        "label_0_2.jpg": [],  # at the root: no label
        "label_1/label_1_1.jpg": ["label_1"],
        "label_1/label_1_1/label_1_1.jpg": ["label_1"],  # nested: the first folder is the class
    }
    assert all(lb.kind is LabelKind.CLASSIFICATION for s in ds.samples for lb in s.labels)
    assert {s.split for s in ds.samples} == {None}
    assert ds.samples[0].path == str((peer / "label_0" / "label_0_1.jpg").absolute())


def test_auto_detection_picks_imagefolder_for_the_peer(peer: Path) -> None:
    assert registry.detect(peer).name == "imagefolder"


def test_peer_round_trip_keeps_samples_classes_and_renames_clashes(peer: Path, tmp_path: Path) -> None:
    first = imagefolder.read(peer)
    items, writer = export_items(first)
    imagefolder.write(tmp_path / "a", items, first.classes, writer)
    imagefolder.write(tmp_path / "b", items, first.classes, writer)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")

    second = imagefolder.read(tmp_path / "a")
    assert second.problems == []
    assert second.classes == first.classes
    # Two label_1 images share the basename label_1_1.jpg: the later key gets "_1".
    assert classes_by_key(second.samples) == {
        "label_0/label_0_1.jpg": ["label_0"],
        "label_0_2.jpg": [],
        "label_1/label_1_1.jpg": ["label_1"],
        "label_1/label_1_1_1.jpg": ["label_1"],
    }
    assert ((tmp_path / "a" / "label_1" / "label_1_1_1.jpg").read_bytes()
            == (peer / "label_1" / "label_1_1" / "label_1_1.jpg").read_bytes())


def split_source(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    make_image(root / "train" / "cat" / "a.jpg")
    make_image(root / "train" / "dog" / "b.png")
    make_image(root / "train" / "loose.jpg")
    make_image(root / "valid" / "cat" / "c.jpg")
    (root / "test" / "bird").mkdir(parents=True)  # an empty class folder is still a class
    return root


def test_images_at_the_root_of_a_split_layout_have_no_split(tmp_path: Path) -> None:
    root = split_source(tmp_path)
    make_image(root / "top.jpg")
    [top] = [s for s in imagefolder.read(root).samples if s.key == "top.jpg"]
    assert (top.split, top.labels) == (None, [])


def test_split_folders_give_splits_and_classes(tmp_path: Path) -> None:
    ds = imagefolder.read(split_source(tmp_path))
    assert ds.problems == []
    assert ds.classes == ["bird", "cat", "dog"]
    assert {s.key: (s.split, [lb.class_name for lb in s.labels]) for s in ds.samples} == {
        "train/cat/a.jpg": ("train", ["cat"]),
        "train/dog/b.png": ("train", ["dog"]),
        "train/loose.jpg": ("train", []),
        "valid/cat/c.jpg": ("val", ["cat"]),
    }
    assert {s.split for s in imagefolder.read(split_source(tmp_path / "x"), split="all").samples} == {"all"}


def test_a_non_split_folder_makes_every_top_folder_a_class(tmp_path: Path) -> None:
    root = split_source(tmp_path)
    make_image(root / "zebra" / "z.jpg")
    ds = imagefolder.read(root)
    assert ds.classes == ["test", "train", "valid", "zebra"]
    assert classes_by_key(ds.samples)["train/cat/a.jpg"] == ["train"]
    assert {s.split for s in ds.samples} == {None}


def test_split_round_trip(tmp_path: Path) -> None:
    first = imagefolder.read(split_source(tmp_path))
    items, writer = export_items(first)
    imagefolder.write(tmp_path / "out", items, first.classes, writer)
    assert sorted(k for k in tree(tmp_path / "out") if not k.endswith("/")) == [
        "train/cat/a.jpg", "train/dog/b.png", "train/loose.jpg", "val/cat/c.jpg"]
    second = imagefolder.read(tmp_path / "out")
    assert second.classes == first.classes  # "bird" kept as an empty folder
    assert {s.key: (s.split, [lb.class_name for lb in s.labels]) for s in second.samples} == {
        "train/cat/a.jpg": ("train", ["cat"]), "train/dog/b.png": ("train", ["dog"]),
        "train/loose.jpg": ("train", []), "val/cat/c.jpg": ("val", ["cat"])}


def test_export_rules_for_missing_split_and_several_classes(tmp_path: Path) -> None:
    src = make_image(tmp_path / "src.jpg")
    samples = [
        SourceSample("x/one.jpg", None, split="val", labels=[SourceLabel(LabelKind.CLASSIFICATION, "cat")]),
        SourceSample("y/one.jpg", None, split=None, labels=[SourceLabel(LabelKind.CLASSIFICATION, "cat")]),
        SourceSample("z/two.jpg", None, split="val", labels=[
            SourceLabel(LabelKind.CLASSIFICATION, "cat"), SourceLabel(LabelKind.CLASSIFICATION, "dog")]),
        SourceSample("w/three.jpg", None, split="val", labels=[
            SourceLabel(LabelKind.CLASSIFICATION, "dog"), SourceLabel(LabelKind.CLASSIFICATION, "dog"),
            SourceLabel(LabelKind.BOX, "cat", bbox=(0, 0, 1, 1))]),
        SourceSample("v/four.jpg", None, split="val", labels=[SourceLabel(LabelKind.BOX, "cat", bbox=(0, 0, 1, 1))]),
    ]
    writer = ImageWriter(lambda h: str(src), ImagesMode.COPY)
    imagefolder.write(tmp_path / "out", [ExportItem(s, str(i)) for i, s in enumerate(samples)], ["cat", "dog"],
                      writer)
    files = sorted(k for k in tree(tmp_path / "out") if not k.endswith("/"))
    assert files == [
        "train/cat/one.jpg",    # no split → train
        "val/cat/one.jpg",
        "val/dog/three.jpg",    # one class (repeated) is fine; boxes are not written
        "val/four.jpg",         # no classification label → top of its split
    ]                           # z/two.jpg has two classes: left out


def test_detect_is_weak(tmp_path: Path, peer: Path) -> None:
    make_image(tmp_path / "a" / "cat" / "x.jpg")
    assert imagefolder.detect(tmp_path / "a")
    write_text(tmp_path / "b" / "annotations.json", "{}")
    make_image(tmp_path / "b" / "cat" / "x.jpg")
    assert not imagefolder.detect(tmp_path / "b")
    write_text(tmp_path / "c" / "notes" / "readme.md", "no images")
    assert not imagefolder.detect(tmp_path / "c")
    assert not imagefolder.detect(PEER / "yolo_dataset" / "strict")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_leading_outside_is_a_problem(tmp_path: Path) -> None:
    secret = make_image(tmp_path / "secret.jpg")
    root = tmp_path / "ds"
    make_image(root / "cat" / "ok.jpg")
    (root / "cat" / "link.jpg").symlink_to(secret)
    ds = imagefolder.read(root)
    assert [s.key for s in ds.samples] == ["cat/ok.jpg"]
    [p] = ds.problems
    assert p.path == "cat/link.jpg" and "outside" in p.message
