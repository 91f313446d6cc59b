"""YOLO importer and exporter: Datumaro's peer layouts, Ultralytics data.yaml, bad input, round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from builders import PEER, dataset_view, export_items, make_image, tree, write_text
from pycocotools import mask as mask_utils

from viewfinder.core.types import LabelKind, SourceLabel, SourceSample
from viewfinder.errors import InvalidInput
from viewfinder.formats import yolo
from viewfinder.formats.base import ExportItem, ImagesMode, ImageWriter

YOLO_PEER = PEER / "yolo_dataset"
PEER_CLASSES = [f"label_{i}" for i in range(10)]


@pytest.fixture
def peer() -> Path:
    if not YOLO_PEER.is_dir():
        pytest.skip(f"peer fixtures not found at {YOLO_PEER}")
    return YOLO_PEER


def boxes(sample: SourceSample) -> list[tuple[str, tuple[float, ...]]]:
    return [(lb.class_name, tuple(round(v, 4) for v in lb.bbox)) for lb in sample.labels]


# Both peer label lines, "2 0.133333 0.3 0.266667 0.2" and "4 0.266667 0.45 0.133333 0.3",
# on a 15x10 image.
PEER_BOXES = [("label_2", (0.0, 2.0, 4.0, 2.0)), ("label_4", (3.0, 3.0, 2.0, 3.0))]


# ----------------------------------------------------------------------------- peer layouts


def test_reads_darknet_strict_layout(peer: Path) -> None:
    root = peer / "strict"
    assert yolo.detect(root)
    ds = yolo.read(root)
    assert ds.problems == []
    assert ds.format == "yolo"
    assert ds.classes == PEER_CLASSES
    [s] = ds.samples
    # train.txt says "data/obj_train_data/1.jpg": the data/ prefix maps onto the source folder.
    assert s.key == "obj_train_data/1.jpg"
    assert s.path == str((root / "obj_train_data" / "1.jpg").absolute())
    assert s.split == "train"
    assert (s.width, s.height) == (15, 10)
    assert boxes(s) == PEER_BOXES
    assert all(lb.kind is LabelKind.BOX for lb in s.labels)


def test_reads_loose_images_labels_layout(peer: Path) -> None:
    ds = yolo.read(peer / "labels")
    assert ds.problems == []  # README.txt at the top is not mistaken for anything
    assert ds.classes == PEER_CLASSES
    assert [(s.key, s.split) for s in ds.samples] == [("train/1.jpg", "train"), ("val/1.jpg", "val")]
    assert all(boxes(s) == PEER_BOXES for s in ds.samples)


def test_reads_loose_images_annotations_layout(peer: Path) -> None:
    ds = yolo.read(peer / "annotations")
    assert ds.problems == []
    [s] = ds.samples
    assert (s.key, s.split) == ("Images/1.jpg", None)
    assert boxes(s) == PEER_BOXES  # found in Annotations/1.txt by stem


def test_split_argument_overrides(peer: Path) -> None:
    ds = yolo.read(peer / "labels", split="holdout")
    assert {s.split for s in ds.samples} == {"holdout"}


@pytest.mark.parametrize("variant", ["strict", "labels", "annotations"])
def test_peer_round_trip_keeps_keys_splits_and_labels(peer: Path, tmp_path: Path, variant: str) -> None:
    first = yolo.read(peer / variant)
    items, writer = export_items(first)
    yolo.write(tmp_path / "a", items, first.classes, writer)
    yolo.write(tmp_path / "b", items, first.classes, writer)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")

    second = yolo.read(tmp_path / "a")
    assert second.problems == []
    assert second.classes == first.classes
    expected = dataset_view(first)
    if variant == "annotations":  # no split → listed in train.txt (documented)
        expected = {k: ("train", labels) for k, (_, labels) in expected.items()}
    assert dataset_view(second) == expected


def test_export_has_the_structure_ultralytics_reads(peer: Path, tmp_path: Path) -> None:
    ds = yolo.read(peer / "labels")
    items, writer = export_items(ds)
    yolo.write(tmp_path, items, ds.classes, writer)

    data = yaml.safe_load((tmp_path / "data.yaml").read_text())
    # Ultralytics: Path(data.get("path") or yaml_file.parent); "." would be the working directory.
    assert data["path"] == ""
    assert data["nc"] == 10
    assert data["names"] == dict(enumerate(PEER_CLASSES))
    assert {"train", "val"} <= data.keys()  # Ultralytics requires both
    for split in ("train", "val"):
        lines = (tmp_path / data[split]).read_text().splitlines()
        assert lines == [f"./images/{split}/1.jpg"]
        for line in lines:
            image = tmp_path / line[2:]  # "./" is relative to the list file's folder
            assert image.is_file()
            # Ultralytics' img2label_paths: last /images/ → /labels/, extension → .txt
            label = Path(str(image).rsplit("/images/", 1)[0] + "/labels/"
                         + str(image).rsplit("/images/", 1)[1]).with_suffix(".txt")
            assert label.read_text() == ("2 0.133333 0.300000 0.266667 0.200000\n"
                                         "4 0.266667 0.450000 0.133333 0.300000\n")


# ----------------------------------------------------------------------------- Ultralytics yaml


def ultralytics(tmp_path: Path, yaml_text: str) -> Path:
    root = tmp_path / "ds"
    make_image(root / "images" / "train" / "a.jpg", (100, 50))
    make_image(root / "images" / "train" / "b.png", (100, 50))
    make_image(root / "images" / "val" / "c.jpg", (100, 50))
    write_text(root / "labels" / "train" / "a.txt", "0 0.5 0.5 0.2 0.4\n1 0.1 0.2 0.3 0.2 0.3 0.6\n")
    write_text(root / "labels" / "train" / "b.txt", "")
    write_text(root / "data.yaml", yaml_text)
    return root


def test_reads_ultralytics_folders_names_mapping_and_polygons(tmp_path: Path) -> None:
    root = ultralytics(tmp_path, "path: .\ntrain: images/train\nval: images/val\nnc: 2\n"
                                 "names:\n  0: person\n  1: car\n")
    assert yolo.detect(root)
    ds = yolo.read(root)
    assert ds.problems == []
    assert ds.classes == ["person", "car"]
    by_key = {s.key: s for s in ds.samples}
    assert sorted(by_key) == ["train/a.jpg", "train/b.png", "val/c.jpg"]
    assert [by_key[k].split for k in sorted(by_key)] == ["train", "train", "val"]
    box, poly = by_key["train/a.jpg"].labels
    assert (box.kind, box.class_name, box.bbox) == (LabelKind.BOX, "person", (40.0, 15.0, 20.0, 20.0))
    assert poly.kind is LabelKind.POLYGON and poly.class_name == "car"
    assert poly.polygon == [[pytest.approx(v) for v in (10.0, 10.0, 30.0, 10.0, 30.0, 30.0)]]
    assert poly.bbox == pytest.approx((10.0, 10.0, 20.0, 20.0))
    assert by_key["train/b.png"].labels == []  # empty label file
    assert by_key["val/c.jpg"].labels == []  # missing label file: not a problem


def test_reads_list_files_and_roboflow_style_paths(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_image(root / "train" / "images" / "a.jpg", (10, 10))
    make_image(root / "valid" / "images" / "b.jpg", (10, 10))
    make_image(root / "images" / "c.jpg", (10, 10))
    write_text(root / "train" / "labels" / "a.txt", "0 0.5 0.5 1 1\n")
    write_text(root / "test.txt", "./images/c.jpg\n")
    # Roboflow writes "../train/images"; Ultralytics retries without "../".
    write_text(root / "data.yaml", "train: ../train/images\nval: [../valid/images]\ntest: test.txt\n"
                                   "names: [thing]\n")
    ds = yolo.read(root)
    assert ds.problems == []
    # images/ exists, so it is the image root; the others are keyed from the dataset folder.
    assert {s.key: s.split for s in ds.samples} == {
        "train/images/a.jpg": "train", "valid/images/b.jpg": "val", "c.jpg": "test"}
    [a] = [s for s in ds.samples if s.key == "train/images/a.jpg"]
    assert a.labels[0].bbox == (0.0, 0.0, 10.0, 10.0)  # labels/ found beside images/


def test_image_in_two_splits_keeps_the_first(tmp_path: Path) -> None:
    root = ultralytics(tmp_path, "train: images/train\nval: images/train\nnames: [a, b]\n")
    ds = yolo.read(root)
    assert ds.problems == []
    assert {s.split for s in ds.samples} == {"train"}


def test_exif_rotated_image_uses_displayed_size(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_image(root / "images" / "train" / "r.jpg", (40, 20), exif_orientation=6)  # shown 20x40
    write_text(root / "labels" / "train" / "r.txt", "0 0.5 0.5 0.5 0.5\n")
    write_text(root / "data.yaml", "train: images/train\nval: images/train\nnames: [a]\n")
    [s] = yolo.read(root).samples
    assert (s.width, s.height) == (20, 40)
    assert s.labels[0].bbox == (5.0, 10.0, 10.0, 20.0)


# ----------------------------------------------------------------------------- bad input


def test_bad_label_lines_are_problems_and_good_lines_survive(tmp_path: Path) -> None:
    root = ultralytics(tmp_path, "train: images/train\nval: images/val\nnames: [person, car]\n")
    write_text(root / "labels" / "train" / "a.txt", "\n".join([
        "0 0.5 0.5 0.2 0.4",          # 1 good
        "7 0.5 0.5 0.2 0.4",          # 2 class id out of range
        "0 0.5 0.5 0.2",              # 3 wrong count
        "0 0.5 abc 0.2 0.4",          # 4 non-numeric
        "0 0.5 1.5 0.2 0.4",          # 5 outside [0, 1]
        "0 0.5 0.5 0 0.4",            # 6 zero width
        "0 0.5 0.5 -0.2 0.4",         # 7 negative width
        "0 0.05 0.5 0.3 0.4",         # 8 box reaches outside
        "1.5 0.5 0.5 0.2 0.4",        # 9 class id not an integer
        "1 0.5 0.5 0.2 0.4 0.9",      # 10 six values (a confidence is not YOLO)
        "1 0.1 0.1 0.9 0.9 0.5 0.5",  # 11 good polygon
        "0 0.5 0.5 0.2 0.4001",       # 12 good
        "0 0.5 0.5 1.0005 0.2",       # 13 within the 1e-3 tolerance: accepted
    ]) + "\n")
    ds = yolo.read(root)
    problems = {p.record: p for p in ds.problems}
    assert all(p.path == "labels/train/a.txt" for p in ds.problems)
    assert set(problems) == {f"line {n}" for n in range(2, 11)}
    assert "out of range" in problems["line 2"].message and "2 classes" in problems["line 2"].message
    assert "expected 5" in problems["line 3"].message
    assert "non-numeric value 'abc'" in problems["line 4"].message
    assert "outside [0, 1]" in problems["line 5"].message
    assert "positive" in problems["line 6"].message and "positive" in problems["line 7"].message
    assert "outside the image" in problems["line 8"].message
    assert "not a non-negative integer" in problems["line 9"].message
    assert "expected 5" in problems["line 10"].message
    [a] = [s for s in ds.samples if s.key == "train/a.jpg"]
    assert [lb.kind for lb in a.labels] == [LabelKind.BOX, LabelKind.POLYGON, LabelKind.BOX, LabelKind.BOX]
    assert len(ds.samples) == 3  # the other samples are untouched


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    root = ultralytics(tmp_path, "train: images/train\nnames: [a, b\nval: x\n")
    ds = yolo.read(root)
    [p] = ds.problems
    assert p.path == "data.yaml"
    assert p.message.startswith("malformed YAML")
    assert p.record is not None and p.record.startswith("line ")
    assert ds.samples == []


@pytest.mark.parametrize("names, problem", [
    ("names: {0: a, 2: c}", "missing [1]"),
    ("nc: 3\nnames: [a, b]", "nc is 3 but names has 2"),
    ("names: 5", "must be a list or a mapping"),
    ("names: [a, [b, c]]", "class 1 has a name that is not text"),
])
def test_bad_class_names_are_problems(tmp_path: Path, names: str, problem: str) -> None:
    root = ultralytics(tmp_path, f"train: images/train\nval: images/val\n{names}\n")
    ds = yolo.read(root)
    assert any(p.path == "data.yaml" and problem in p.message for p in ds.problems), ds.problems


def test_missing_split_folder_is_a_problem(tmp_path: Path) -> None:
    root = ultralytics(tmp_path, "train: images/train\nval: images/nope\nnames: [a, b]\n")
    ds = yolo.read(root)
    [p] = ds.problems
    assert (p.path, p.record) == ("data.yaml", "val") and "does not exist" in p.message
    assert len(ds.samples) == 2


def test_list_file_escapes_and_missing_images_are_problems(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_image(root / "obj_train_data" / "ok.jpg", (20, 20))
    make_image(tmp_path / "outside.jpg", (20, 20))
    write_text(root / "obj_train_data" / "ok.txt", "0 0.5 0.5 0.5 0.5\n")
    write_text(root / "obj.names", "cat\n")
    write_text(root / "obj.data", "classes = 1\ntrain = data/train.txt\nnames = data/obj.names\n")
    write_text(root / "train.txt", "\n".join([
        "data/obj_train_data/ok.jpg",
        "../outside.jpg",
        str(tmp_path / "outside.jpg"),
        "data/obj_train_data/gone.jpg",
    ]) + "\n")
    ds = yolo.read(root)
    assert [s.key for s in ds.samples] == ["obj_train_data/ok.jpg"]
    assert ds.samples[0].labels[0].bbox == (5.0, 5.0, 10.0, 10.0)
    problems = {p.record: p for p in ds.problems}
    assert set(problems) == {"line 2", "line 3", "line 4"}
    assert all(p.path == "train.txt" for p in ds.problems)
    assert "escapes" in problems["line 2"].message
    assert "absolute" in problems["line 3"].message
    assert "does not exist" in problems["line 4"].message


def test_darknet_class_count_mismatch_is_a_problem(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_image(root / "obj_train_data" / "ok.jpg")
    write_text(root / "obj.names", "cat\ndog\n")
    write_text(root / "obj.data", "classes = 3\ntrain = train.txt\n")
    write_text(root / "train.txt", "obj_train_data/ok.jpg\n")
    ds = yolo.read(root)
    [p] = ds.problems
    assert (p.path, p.record) == ("obj.data", "line 1")
    assert ds.classes == ["cat", "dog"]


def test_unreadable_image_and_label_file_skip_the_sample(tmp_path: Path) -> None:
    root = ultralytics(tmp_path, "train: images/train\nval: images/val\nnames: [a, b]\n")
    (root / "images" / "train" / "b.png").write_bytes(b"not an image")
    (root / "labels" / "train" / "a.txt").write_bytes(b"0 0.5 0.5 0.2 0.2\n\xff\xfe bad\n")
    ds = yolo.read(root)
    assert [s.key for s in ds.samples] == ["val/c.jpg"]
    problems = {p.path: p for p in ds.problems}
    assert set(problems) == {"images/train/b.png", "labels/train/a.txt"}
    assert "cannot read image" in problems["images/train/b.png"].message
    assert "not UTF-8" in problems["labels/train/a.txt"].message


def test_not_a_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        yolo.read(tmp_path / "missing")


def test_detect_needs_a_yolo_marker_file(tmp_path: Path) -> None:
    make_image(tmp_path / "images" / "a.jpg")
    assert not yolo.detect(tmp_path)
    write_text(tmp_path / "obj.names", "a\n")
    assert yolo.detect(tmp_path)


# ----------------------------------------------------------------------------- export


def test_export_writes_exact_lines_and_documents_lossy_kinds(tmp_path: Path) -> None:
    src = make_image(tmp_path / "src.jpg", (200, 100))
    left_quarter = np.zeros((100, 200), dtype=np.uint8)
    left_quarter[:, :50] = 1
    rle = mask_utils.encode(np.asfortranarray(left_quarter))
    sample = SourceSample(key="sub/x.jpg", path=None, split=None, width=200, height=100, labels=[
        SourceLabel(LabelKind.BOX, "dog", bbox=(10, 20, 50, 40)),
        SourceLabel(LabelKind.POLYGON, "cat", polygon=[[0, 0, 100, 0, 100, 50], [150, 50, 200, 50, 200, 100]]),
        SourceLabel(LabelKind.MASK, "cat", mask={"size": [100, 200], "counts": rle["counts"].decode()}),
        SourceLabel(LabelKind.CLASSIFICATION, "dog"),
        SourceLabel(LabelKind.BOX, "bird", bbox=(0, 0, 200, 100)),  # not in classes: appended
    ])
    other = SourceSample(key="y.jpg", path=None, split="test", width=200, height=100)
    writer = ImageWriter(lambda h: str(src), ImagesMode.COPY)
    yolo.write(tmp_path / "out", [ExportItem(other, "h2"), ExportItem(sample, "h1")], ["cat", "dog"], writer)
    out = tmp_path / "out"
    assert (out / "labels" / "sub" / "x.txt").read_text() == "\n".join([
        "1 0.175000 0.400000 0.250000 0.400000",
        "0 0.000000 0.000000 0.500000 0.000000 0.500000 0.500000",
        "0 0.750000 0.500000 1.000000 0.500000 1.000000 1.000000",
        "0 0.125000 0.500000 0.250000 1.000000",  # the mask as its box
        "2 0.500000 0.500000 1.000000 1.000000",
    ]) + "\n"
    assert (out / "labels" / "y.txt").read_text() == ""
    assert (out / "images" / "sub" / "x.jpg").read_bytes() == src.read_bytes()
    assert (out / "train.txt").read_text() == "./images/sub/x.jpg\n"  # no split → train
    assert (out / "test.txt").read_text() == "./images/y.jpg\n"
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data == {"path": "", "train": "train.txt", "val": "train.txt", "test": "test.txt",
                    "nc": 3, "names": {0: "cat", 1: "dog", 2: "bird"}}


def test_export_extra_splits_come_back(tmp_path: Path) -> None:
    src = make_image(tmp_path / "src.jpg", (10, 10))
    items = [ExportItem(SourceSample(key=f"{s}.jpg", path=None, split=s, width=10, height=10,
                                     labels=[SourceLabel(LabelKind.BOX, "a", bbox=(1, 1, 2, 2))]), s)
             for s in ("train", "valid", "holdout")]
    yolo.write(tmp_path / "out", items, ["a"], ImageWriter(lambda h: str(src), ImagesMode.COPY))
    ds = yolo.read(tmp_path / "out")
    assert ds.problems == []
    assert {s.key: s.split for s in ds.samples} == {"train.jpg": "train", "valid.jpg": "val",
                                                    "holdout.jpg": "holdout"}
    assert all(s.labels[0].bbox == pytest.approx((1, 1, 2, 2)) for s in ds.samples)


def test_export_without_image_size_refuses(tmp_path: Path) -> None:
    item = ExportItem(SourceSample(key="a.jpg", path=None, labels=[
        SourceLabel(LabelKind.BOX, "a", bbox=(1, 1, 2, 2))]), "h")
    with pytest.raises(InvalidInput, match="no stored image size"):
        yolo.write(tmp_path / "out", [item], ["a"], ImageWriter(str, ImagesMode.NONE))


def test_label_path_matches_ultralytics() -> None:
    assert yolo.label_path("images/train/a.jpg") == "labels/train/a.txt"
    assert yolo.label_path("images/train/images/a.jpeg") == "images/train/labels/a.txt"
    assert yolo.label_path("obj_train_data/a.b.png") == "obj_train_data/a.b.txt"


@pytest.mark.parametrize("variant", ["strict", "labels", "annotations"])
def test_auto_detection_picks_yolo_for_the_peers(peer: Path, variant: str) -> None:
    from viewfinder.formats import registry

    assert registry.detect(peer / variant).name == "yolo"
