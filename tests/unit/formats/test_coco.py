"""COCO importer and exporter: peer datasets, bad input, round trip, pycocotools."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from tests.peer import PEER
from viewfinder.core.types import LabelKind, SourceDataset, SourceLabel, SourceSample
from viewfinder.errors import InvalidInput
from viewfinder.formats import coco
from viewfinder.formats.base import ExportItem, ImagesMode, ImageWriter

COCO_PEER = PEER / "coco_dataset"


@pytest.fixture
def peer() -> Path:
    if not COCO_PEER.is_dir():
        pytest.skip(f"peer fixtures not found at {COCO_PEER}")
    return COCO_PEER


# --------------------------------------------------------------------------- builders


def make_jpeg(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (120, 40, 200)).save(path, "JPEG")
    return path


def make_coco(root: Path, *, split: str = "train", images: list[dict[str, Any]] | None = None,
              annotations: list[dict[str, Any]] | None = None,
              categories: list[dict[str, Any]] | None = None, write_images: bool = True,
              task: str = "instances") -> Path:
    """A COCO folder: ``annotations/<task>_<split>.json`` and ``images/<split>/*.jpg``."""
    if images is None:
        images = [{"id": 1, "file_name": "a.jpg", "width": 20, "height": 10},
                  {"id": 2, "file_name": "b.jpg", "width": 20, "height": 10}]
    if categories is None:
        categories = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    if annotations is None:
        annotations = [box(1, 1, 1, [1, 1, 5, 5]), box(2, 2, 2, [2, 2, 4, 4])]
    if write_images:
        for im in images:
            name = im.get("file_name")
            if isinstance(name, str) and not name.startswith("/") and ".." not in name:
                make_jpeg(root / "images" / split / name, im.get("width", 20), im.get("height", 10))
    data = {"images": images, "annotations": annotations, "categories": categories}
    path = root / "annotations" / f"{task}_{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def box(aid: int, image_id: int, category_id: int, bbox: list[Any], **extra: Any) -> dict[str, Any]:
    return {"id": aid, "image_id": image_id, "category_id": category_id, "bbox": bbox,
            "segmentation": [], "iscrowd": 0, "area": 1.0, **extra}


def by_key(ds: SourceDataset) -> dict[str, SourceSample]:
    return {s.key: s for s in ds.samples}


def one_problem(ds: SourceDataset) -> Any:
    assert len(ds.problems) == 1, ds.problems
    return ds.problems[0]


class PathWriter(ImageWriter):
    """Images mode COPY where the 'content hash' is the original file path."""

    def __init__(self, mode: ImagesMode = ImagesMode.COPY) -> None:
        super().__init__(lambda h: h, mode)


def export_items(ds: SourceDataset) -> list[ExportItem]:
    return [ExportItem(sample=s, content_hash=s.path or "") for s in ds.samples]


def label_signature(label: SourceLabel) -> str:
    return json.dumps([LabelKind(label.kind).value, label.class_name, label.bbox, label.polygon,
                       label.mask, label.keypoints, label.iscrowd, label.attributes,
                       label.score], sort_keys=True)


def assert_same_dataset(a: SourceDataset, b: SourceDataset) -> None:
    assert [(s.key, s.split, s.width, s.height) for s in a.samples] == \
           [(s.key, s.split, s.width, s.height) for s in b.samples]
    for sa, sb in zip(a.samples, b.samples, strict=True):
        assert sorted(map(label_signature, sa.labels)) == sorted(map(label_signature, sb.labels)), sa.key
        assert sa.metadata == sb.metadata
    assert a.classes == b.classes


# --------------------------------------------------------------------------- detect


def test_detect_accepts_coco_layouts(peer: Path, tmp_path: Path) -> None:
    assert coco.detect(peer / "coco_instances")
    assert coco.detect(peer / "coco")
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "dataset.json").write_text(json.dumps({"images": [], "annotations": []}))
    assert coco.detect(flat)


def test_detect_refuses_other_layouts(tmp_path: Path) -> None:
    assert not coco.detect(tmp_path)
    make_jpeg(tmp_path / "cat" / "1.jpg", 4, 4)
    (tmp_path / "tasks.json").write_text('[{"annotations": [], "images": []}]')  # a JSON list
    assert not coco.detect(tmp_path)
    if (PEER / "cvat_dataset").is_dir():
        assert not coco.detect(PEER / "cvat_dataset" / "for_images" / "export_project")


# --------------------------------------------------------------------------- peer datasets


def test_reads_peer_coco_instances(peer: Path) -> None:
    ds = coco.read(peer / "coco_instances")
    assert ds.problems == []
    assert ds.format == "coco"
    assert ds.classes == ["a", "b", "c"]
    samples = by_key(ds)
    assert sorted(samples) == ["train/a.jpg", "val/b.jpg"]

    a = samples["train/a.jpg"]
    assert (a.split, a.width, a.height) == ("train", 10, 5)
    assert a.path == str(peer / "coco_instances" / "images" / "train" / "a.jpg")
    [label] = a.labels
    assert (label.kind, label.class_name, label.bbox, label.source_id) == (
        LabelKind.BOX, "b", (2.0, 2.0, 3.0, 1.0), "1")

    b = samples["val/b.jpg"]
    assert (b.split, b.width, b.height) == ("val", 5, 10)
    polygon, mask = b.labels
    assert polygon.kind is LabelKind.POLYGON and polygon.class_name == "a"
    assert polygon.polygon == [[0, 0, 1, 0, 1, 2, 0, 2]]
    assert polygon.bbox == (0, 0, 1, 2)
    assert polygon.attributes == {"x": 1, "y": "hello"}
    assert not polygon.iscrowd
    assert mask.kind is LabelKind.MASK and mask.class_name == "b" and mask.iscrowd
    assert mask.source_id == "2"
    assert isinstance(mask.mask["counts"], str) and mask.mask["size"] == [10, 5]
    # uncompressed counts [0, 20, 30] column-major: the first two columns are set
    pixels = mask_utils.decode({"size": [10, 5], "counts": mask.mask["counts"].encode()})
    assert pixels[:, :2].all() and not pixels[:, 2:].any()
    assert mask.bbox == (0, 0, 1, 9)  # the file's bbox is kept as stated


def test_reads_peer_coco_with_every_task_merged_per_image(peer: Path) -> None:
    ds = coco.read(peer / "coco")
    assert ds.problems == []
    assert ds.classes == ["a", "b", "c"]
    samples = by_key(ds)
    assert sorted(samples) == ["train/a.jpg", "val/b.jpg"]

    a = samples["train/a.jpg"]
    assert a.metadata == {"captions": ["hello"]}
    kinds = {(lab.source_id, lab.kind, lab.class_name) for lab in a.labels}
    assert kinds == {
        ("1", LabelKind.KEYPOINTS, "b"),          # instances id=1 + person_keypoints id=1
        ("7", LabelKind.MASK, "a"),               # stuff id=7
        ("labels:1", LabelKind.CLASSIFICATION, "b"),
        ("panoptic:7", LabelKind.MASK, "a"),
    }
    kp = next(lab for lab in a.labels if lab.source_id == "1")
    assert kp.bbox == (2, 2, 3, 1)
    assert kp.keypoints == [0, 0, 0, 0, 2, 1, 4, 1, 2]
    assert kp.attributes == {"_skeleton": [[0, 1], [1, 2]]}

    b = samples["val/b.jpg"]
    assert b.metadata == {"captions": ["world", "text"]}
    assert len(b.labels) == 6
    by_id = {lab.source_id: lab for lab in b.labels}
    assert set(by_id) == {"1", "2", "labels:1", "labels:2", "panoptic:7", "panoptic:20"}
    # polygon instance + keypoints: one label carrying both
    assert by_id["1"].kind is LabelKind.KEYPOINTS
    assert by_id["1"].polygon == [[0, 0, 1, 0, 1, 2, 0, 2]]
    assert by_id["1"].keypoints == [1, 2, 2, 3, 4, 2, 2, 3, 2]
    assert by_id["1"].attributes == {"x": 1, "y": "hello", "_skeleton": [[0, 1], [1, 2]]}
    # crowd RLE instance + keypoints + the identical stuff annotation: one label
    assert by_id["2"].kind is LabelKind.KEYPOINTS and by_id["2"].iscrowd
    assert by_id["2"].mask == {"size": [10, 5], "counts": "0d0n0"}
    assert [by_id[i].class_name for i in ("labels:1", "labels:2")] == ["a", "b"]
    assert by_id["labels:1"].kind is LabelKind.CLASSIFICATION
    assert by_id["labels:1"].bbox is None


def test_panoptic_segments_become_masks_from_the_png(peer: Path) -> None:
    b = by_key(coco.read(peer / "coco"))["val/b.jpg"]
    seg7 = next(lab for lab in b.labels if lab.source_id == "panoptic:7")
    seg20 = next(lab for lab in b.labels if lab.source_id == "panoptic:20")
    assert (seg7.class_name, seg7.iscrowd, seg20.class_name, seg20.iscrowd) == ("a", False, "b", True)

    def decode(label: SourceLabel) -> np.ndarray:
        return mask_utils.decode({"size": label.mask["size"], "counts": label.mask["counts"].encode()})

    m7, m20 = decode(seg7), decode(seg20)
    assert m7.shape == (10, 5)
    assert m7[:, :2].all() and not m7[:, 2:].any()
    assert m20[:, 2:4].all() and not m20[:, [0, 1, 4]].any()
    assert seg20.bbox == (2, 0, 1, 9)


def test_split_argument_overrides_file_split(peer: Path) -> None:
    ds = coco.read(peer / "coco_instances", split="holdout")
    assert [(s.key, s.split) for s in ds.samples] == [("train/a.jpg", "holdout"),
                                                       ("val/b.jpg", "holdout")]


def test_default_file_means_no_split_and_flat_image_folder(tmp_path: Path) -> None:
    make_jpeg(tmp_path / "images" / "a.jpg", 20, 10)
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 20, "height": 10}],
            "annotations": [box(1, 1, 1, [0, 0, 3, 3])], "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_default.json").write_text(json.dumps(data))
    ds = coco.read(tmp_path)
    assert ds.problems == []
    assert [(s.key, s.split) for s in ds.samples] == [("a.jpg", None)]


def test_coco_release_layout_split_folder_at_root(tmp_path: Path) -> None:
    make_jpeg(tmp_path / "val2017" / "000001.jpg", 20, 10)
    data = {"images": [{"id": 1, "file_name": "000001.jpg", "width": 20, "height": 10}],
            "annotations": [box(1, 1, 1, [0, 0, 3, 3])], "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    ds = coco.read(tmp_path)
    assert ds.problems == []
    assert [(s.key, s.split) for s in ds.samples] == [("val2017/000001.jpg", "val2017")]


def test_images_without_annotations_are_samples(tmp_path: Path) -> None:
    make_coco(tmp_path, annotations=[])
    ds = coco.read(tmp_path)
    assert ds.problems == []
    assert [(s.key, s.labels) for s in ds.samples] == [("train/a.jpg", []), ("train/b.jpg", [])]


def test_annotation_fields_are_kept(tmp_path: Path) -> None:
    make_coco(tmp_path, annotations=[
        box(10, 1, 2, [1, 1, 5, 5], score=0.75, attributes={"occluded": True}),
        {"id": 11, "image_id": 1, "category_id": 1},
        {"id": 12, "image_id": 2, "category_id": 1, "iscrowd": 0,
         "segmentation": [[1, 1, 5, 1, 5, 4], [6, 6, 8, 6, 8, 8]]},
    ])
    ds = coco.read(tmp_path)
    assert ds.problems == []
    a, b = ds.samples
    scored, tag = a.labels
    assert (scored.source_id, scored.score, scored.attributes) == ("10", 0.75, {"occluded": True})
    assert (tag.kind, tag.class_name, tag.bbox) == (LabelKind.CLASSIFICATION, "cat", None)
    [poly] = b.labels
    assert poly.kind is LabelKind.POLYGON and len(poly.polygon) == 2
    assert poly.bbox == (1, 1, 7, 7)  # derived from the rings when the file has no bbox


def test_instance_family_files_share_one_id_space(tmp_path: Path) -> None:
    """instances, stuff and person_keypoints of a split: an annotation with the id, image,
    class and box of an earlier file's is that label; the same id on another object is a
    label of its own (``task:id``), and a later file still merges into the first."""
    make_coco(tmp_path, annotations=[box(-3, 1, 1, [1, 1, 5, 5]), box(4, 2, 1, [2, 2, 4, 4])])
    make_coco(tmp_path, task="stuff", write_images=False, annotations=[
        box(-3, 1, 2, [0, 0, 9, 9]),  # same id and image, another object
        box(4, 1, 1, [2, 2, 4, 4]),   # same id, another image
    ])
    make_coco(tmp_path, task="person_keypoints", write_images=False, annotations=[
        box(-3, 1, 1, [1, 1, 5, 5], keypoints=[2, 2, 2]),  # the instance of the first file
    ])
    ds = coco.read(tmp_path)
    assert ds.problems == []
    a, b = ds.samples
    by_id = {lab.source_id: lab for lab in a.labels}
    assert set(by_id) == {"-3", "stuff:-3", "4"}
    assert by_id["-3"].kind is LabelKind.KEYPOINTS and by_id["-3"].keypoints == [2, 2, 2]
    assert by_id["stuff:-3"].class_name == "dog" and by_id["stuff:-3"].keypoints is None
    assert [(lab.source_id, lab.bbox) for lab in b.labels] == [("4", (2, 2, 4, 4))]


# --------------------------------------------------------------------------- bad input


def test_malformed_json_is_a_problem_and_other_files_still_load(tmp_path: Path) -> None:
    make_coco(tmp_path, split="val")
    bad = tmp_path / "annotations" / "instances_train.json"
    bad.write_text('{"images": [}')
    ds = coco.read(tmp_path)
    problem = one_problem(ds)
    assert problem.path == "annotations/instances_train.json"
    assert "malformed JSON" in problem.message and "line 1" in problem.message
    assert [s.key for s in ds.samples] == ["val/a.jpg", "val/b.jpg"]


@pytest.mark.parametrize(("content", "needle"), [
    ([1, 2], "top level must be an object"),
    ({"annotations": [], "categories": []}, "'images' is missing"),
    ({"images": {}, "annotations": []}, "'images' is missing or not a list"),
])
def test_wrong_top_level_is_a_problem(tmp_path: Path, content: Any, needle: str) -> None:
    path = make_coco(tmp_path)
    path.write_text(json.dumps(content))
    problem = one_problem(coco.read(tmp_path))
    assert problem.path == "annotations/instances_train.json"
    assert needle in problem.message


def test_annotations_of_wrong_type_is_a_problem_but_images_load(tmp_path: Path) -> None:
    path = make_coco(tmp_path)
    data = json.loads(path.read_text())
    data["annotations"] = {"oops": 1}
    path.write_text(json.dumps(data))
    ds = coco.read(tmp_path)
    assert "'annotations' must be a list" in one_problem(ds).message
    assert len(ds.samples) == 2


def test_unknown_category_id(tmp_path: Path) -> None:
    make_coco(tmp_path, annotations=[box(1, 1, 1, [1, 1, 2, 2]), box(2, 1, 99, [1, 1, 2, 2])])
    ds = coco.read(tmp_path)
    problem = one_problem(ds)
    assert (problem.path, problem.record) == ("annotations/instances_train.json", "annotation id=2")
    assert "unknown category_id 99" in problem.message
    assert [lab.source_id for lab in by_key(ds)["train/a.jpg"].labels] == ["1"]


def test_unknown_image_id(tmp_path: Path) -> None:
    make_coco(tmp_path, annotations=[box(1, 1, 1, [1, 1, 2, 2]), box(2, 42, 1, [1, 1, 2, 2])])
    ds = coco.read(tmp_path)
    problem = one_problem(ds)
    assert problem.record == "annotation id=2" and "unknown image_id 42" in problem.message
    assert sum(len(s.labels) for s in ds.samples) == 1


def test_negative_box_size(tmp_path: Path) -> None:
    make_coco(tmp_path, annotations=[box(1, 1, 1, [1, 1, 2, 2]), box(2, 1, 1, [5, 5, -3, 2])])
    ds = coco.read(tmp_path)
    problem = one_problem(ds)
    assert problem.record == "annotation id=2" and "negative size" in problem.message
    assert [lab.source_id for lab in ds.samples[0].labels] == ["1"]


def test_box_outside_image_with_one_pixel_tolerance(tmp_path: Path) -> None:
    make_coco(tmp_path, annotations=[
        box(1, 1, 1, [10.5, 0, 10.4, 10.9]),   # ends at 20.9 x 10.9 in a 20x10 image: tolerated
        box(2, 1, 1, [15, 2, 8, 2]),           # ends at x=23
        box(3, 2, 1, [-2, 0, 3, 3]),           # starts at x=-2
    ])
    ds = coco.read(tmp_path)
    assert [(p.record, "outside the 20x10 image" in p.message) for p in ds.problems] == [
        ("annotation id=2", True), ("annotation id=3", True)]
    assert [lab.source_id for s in ds.samples for lab in s.labels] == ["1"]


def test_non_finite_numbers(tmp_path: Path) -> None:
    path = make_coco(tmp_path, annotations=[box(1, 1, 1, [1, 1, 2, 2]),
                                            box(2, 1, 1, [1, float("nan"), 2, 2])])
    assert "NaN" in path.read_text()  # Python's json writes (and reads) NaN
    ds = coco.read(tmp_path)
    problem = one_problem(ds)
    assert problem.record == "annotation id=2" and "non-finite" in problem.message
    assert len(ds.samples[0].labels) == 1


def test_file_name_escaping_the_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_jpeg(tmp_path / "secret.jpg", 20, 10)  # exists, but outside the dataset
    make_coco(root, images=[{"id": 1, "file_name": "a.jpg", "width": 20, "height": 10},
                            {"id": 2, "file_name": "../../../secret.jpg", "width": 20, "height": 10}],
              annotations=[box(1, 1, 1, [1, 1, 2, 2]), box(2, 2, 1, [1, 1, 2, 2])])
    ds = coco.read(root)
    problem = one_problem(ds)
    assert problem.path == "annotations/instances_train.json"
    assert problem.record == "image id=2 (../../../secret.jpg)"
    assert "escapes" in problem.message
    assert [s.key for s in ds.samples] == ["train/a.jpg"]


def test_absolute_file_name_is_refused(tmp_path: Path) -> None:
    outside = make_jpeg(tmp_path / "elsewhere" / "x.jpg", 20, 10)
    root = tmp_path / "ds"
    make_coco(root, images=[{"id": 1, "file_name": "a.jpg", "width": 20, "height": 10},
                            {"id": 7, "file_name": str(outside), "width": 20, "height": 10}],
              annotations=[])
    ds = coco.read(root)
    problem = one_problem(ds)
    assert problem.record == f"image id=7 ({outside})" and "absolute" in problem.message
    assert [s.key for s in ds.samples] == ["train/a.jpg"]


def test_missing_image_file(tmp_path: Path) -> None:
    make_coco(tmp_path)
    (tmp_path / "images" / "train" / "b.jpg").unlink()
    ds = coco.read(tmp_path)
    problem = one_problem(ds)
    assert (problem.path, problem.record) == ("annotations/instances_train.json", "image id=2 (b.jpg)")
    assert "not found" in problem.message
    assert [(s.key, len(s.labels)) for s in ds.samples] == [("train/a.jpg", 1)]


def test_images_are_announced_per_file_before_its_annotations(peer: Path, tmp_path: Path) -> None:
    """An import starts reading images while the annotations are parsed: the reader hands
    over each file's images (key and path, missing files left out) as it finds them."""
    calls: list[list[tuple[str, str]]] = []
    ds = coco.read(peer / "coco", images_found=calls.append)
    assert calls and all(calls)
    announced = {k: p for call in calls for k, p in call}
    assert announced == {s.key: s.path for s in ds.samples}

    make_coco(tmp_path)
    (tmp_path / "images" / "train" / "b.jpg").unlink()
    calls.clear()
    ds = coco.read(tmp_path, images_found=calls.append)
    assert [[k for k, _ in call] for call in calls] == [["train/a.jpg"]]
    assert [s.key for s in ds.samples] == ["train/a.jpg"]


def test_duplicate_image_ids(tmp_path: Path) -> None:
    make_coco(tmp_path, images=[{"id": 1, "file_name": "a.jpg", "width": 20, "height": 10},
                                {"id": 1, "file_name": "b.jpg", "width": 20, "height": 10}],
              annotations=[box(1, 1, 1, [1, 1, 2, 2])])
    ds = coco.read(tmp_path)
    problem = one_problem(ds)
    assert problem.record == "image id=1 (b.jpg)" and "duplicate image id" in problem.message
    assert [(s.key, len(s.labels)) for s in ds.samples] == [("train/a.jpg", 1)]


def test_duplicate_annotation_ids(tmp_path: Path) -> None:
    make_coco(tmp_path, annotations=[box(5, 1, 1, [1, 1, 2, 2]), box(5, 2, 2, [1, 1, 2, 2]),
                                     box(6, 2, 2, [3, 3, 2, 2])])
    ds = coco.read(tmp_path)
    problem = one_problem(ds)
    assert problem.record == "annotation id=5" and "duplicate annotation id" in problem.message
    assert [[lab.source_id for lab in s.labels] for s in ds.samples] == [["5"], ["6"]]


def _plain_and_broken_boxes() -> list[dict[str, Any]]:
    """Box annotations of the plain shape (the reader packs them while parsing), good and
    bad in every way the reader checks, with and without the optional keys."""
    anns: list[dict[str, Any]] = [
        box(1, 1, 1, [1.5, 1, 5, 5]), box(2, 1, 2, [1, 1, 5, 5], iscrowd=1),
        box(3, 1, 2, [1, 1, 5, 5], iscrowd=True), box(4, 2, 1, [0, 0, 20, 10], iscrowd=1.0),
        {"id": 5, "image_id": 2, "category_id": 2, "bbox": [2, 2, 3, 3]},  # no area, no iscrowd
        box(6, 2, 1, [1, 1, 2, 2], segmentation=None),
        box(7, 1, 1, [1, 1, "5", 5]), box(8, 1, 1, [1, 1, True, 5]),
        box(9, 1, 1, [1, 1, 10 ** 400, 5]), box(10, 1, 1, [1, 1, float("nan"), 5]),
        box(11, 1, 1, [1, 1, -2, 5]), box(12, 1, 1, [15, 1, 10, 5]), box(13, 1, 1, [1, 1, 5, 5], iscrowd=2),
        box(14, 1, 9, [1, 1, 5, 5]), box(15, 1, "1", [1, 1, 5, 5]), box(16, 7, 1, [1, 1, 5, 5]),
        box(1, 2, 1, [1, 1, 5, 5]), box(17, None, 1, [1, 1, 5, 5]),
        {"id": 18, "image_id": 1, "bbox": [1, 1, 5, 5]},  # no category
    ]
    return anns


def test_packed_boxes_read_exactly_as_plain_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain box annotations are packed while the file is parsed (memory); every label and
    every problem must be the same as when the file is read as plain JSON."""
    make_coco(tmp_path, annotations=_plain_and_broken_boxes())
    packed = coco.read(tmp_path)
    monkeypatch.setattr(coco, "_parse", json.loads)
    plain = coco.read(tmp_path)
    assert packed.problems == plain.problems and len(packed.problems) == 13
    assert_same_dataset(packed, plain)
    assert [[lab.source_id for lab in s.labels] for s in packed.samples] == [["1", "2", "3"], ["4", "5", "6"]]
    assert [lab.iscrowd for s in packed.samples for lab in s.labels] == [False, True, True, True, False, False]


def test_plain_box_shape_outside_the_annotations_list_is_kept_as_it_is(tmp_path: Path) -> None:
    """An object shaped like a plain box annotation inside an annotation's attributes (or
    anywhere else) stays the object it is."""
    ref = {"id": 1, "image_id": 2, "category_id": 1, "bbox": [1, 1, 2, 2]}
    make_coco(tmp_path, annotations=[box(1, 1, 1, [1, 1, 5, 5], attributes={"ref": ref, "refs": [ref]}),
                                     box(2, 2, 1, [1, 1, 5, 5])])
    ds = coco.read(tmp_path)
    assert ds.problems == []
    assert ds.samples[0].labels[0].attributes == {"ref": ref, "refs": [ref]}
    assert ds.samples[1].labels[0].bbox == (1, 1, 5, 5)


@pytest.mark.parametrize(("segmentation", "needle"), [
    ({"size": [10, 20], "counts": [0, 20, 30]}, "cover 50 pixels"),
    ({"size": [5, 5], "counts": [25]}, "not the image's"),
    ({"size": [10, 20], "counts": "\x7f\x7f"}, "invalid character"),
    ([[1, 1, 2, 2, 3]], "even number"),
    ("nope", "list of polygons or an RLE"),
])
def test_bad_segmentation(tmp_path: Path, segmentation: Any, needle: str) -> None:
    make_coco(tmp_path, annotations=[
        box(1, 1, 1, [1, 1, 2, 2]),
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": segmentation, "iscrowd": 1},
    ])
    ds = coco.read(tmp_path)
    problem = one_problem(ds)
    assert problem.record == "annotation id=2" and needle in problem.message
    assert len(ds.samples[0].labels) == 1


def test_same_image_in_two_splits_is_a_problem(tmp_path: Path) -> None:
    for split in ("train", "val"):
        make_coco(tmp_path, split=split, write_images=False,
                  images=[{"id": 1, "file_name": "a.jpg", "width": 20, "height": 10}],
                  annotations=[])
    make_jpeg(tmp_path / "images" / "a.jpg", 20, 10)
    ds = coco.read(tmp_path)
    problem = one_problem(ds)
    assert problem.path == "annotations/instances_val.json"
    assert "already in split 'train'" in problem.message
    assert [(s.key, s.split) for s in ds.samples] == [("a.jpg", "train")]


def test_no_annotation_files_and_not_a_folder(tmp_path: Path) -> None:
    problem = one_problem(coco.read(tmp_path))
    assert "no COCO annotation files" in problem.message
    with pytest.raises(InvalidInput):
        coco.read(tmp_path / "missing")


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize("case", ["coco_instances", "coco"])
def test_round_trip_peer(peer: Path, tmp_path: Path, case: str) -> None:
    first = coco.read(peer / case)
    coco.write(tmp_path / "out", export_items(first), first.classes, PathWriter())
    second = coco.read(tmp_path / "out")
    assert second.problems == []
    assert_same_dataset(first, second)
    assert (tmp_path / "out" / "images" / "val" / "b.jpg").read_bytes() == \
        (peer / case / "images" / "val" / "b.jpg").read_bytes()


def test_export_is_deterministic(peer: Path, tmp_path: Path) -> None:
    ds = coco.read(peer / "coco")
    items = export_items(ds)
    coco.write(tmp_path / "one", items, ds.classes, PathWriter(ImagesMode.NONE))
    shuffled = list(items)
    random.Random(3).shuffle(shuffled)
    coco.write(tmp_path / "two", shuffled, ds.classes, PathWriter(ImagesMode.NONE))
    one = {p.name: p.read_bytes() for p in (tmp_path / "one" / "annotations").iterdir()}
    two = {p.name: p.read_bytes() for p in (tmp_path / "two" / "annotations").iterdir()}
    assert sorted(one) == ["captions_train.json", "captions_val.json", "instances_train.json",
                           "instances_val.json", "labels_train.json", "labels_val.json"]
    assert one == two
    assert not any((tmp_path / "one" / "images").iterdir())  # ImagesMode.NONE places nothing


def test_export_loads_in_pycocotools_with_geometry_intact(peer: Path, tmp_path: Path) -> None:
    ds = coco.read(peer / "coco")
    coco.write(tmp_path, export_items(ds), ds.classes, PathWriter(ImagesMode.NONE))
    api = COCO(str(tmp_path / "annotations" / "instances_val.json"))
    [image] = api.loadImgs(api.getImgIds())
    assert (image["file_name"], image["width"], image["height"]) == ("b.jpg", 5, 10)
    cats = {c["id"]: c for c in api.loadCats(api.getCatIds())}
    assert [cats[i]["name"] for i in sorted(cats)] == ["a", "b", "c"]
    assert cats[1]["skeleton"] == [[0, 1], [1, 2]]

    labels = {lab.source_id: lab for lab in by_key(ds)["val/b.jpg"].labels}
    anns = {a["id"]: a for a in api.loadAnns(api.getAnnIds())}
    assert sorted(anns) == [1, 2, 3, 4]  # ids 1, 2 kept; the panoptic segments numbered after
    assert anns[1]["segmentation"] == [[0, 0, 1, 0, 1, 2, 0, 2]]
    assert anns[1]["keypoints"] == [1, 2, 2, 3, 4, 2, 2, 3, 2] and anns[1]["num_keypoints"] == 3
    assert anns[1]["attributes"] == {"x": 1, "y": "hello"}
    for aid, ann in anns.items():
        assert ann["bbox"] == list(labels[str(aid)].bbox if aid <= 2 else ann["bbox"])
        rle = api.annToRLE(ann)  # polygons and RLE both decode
        assert mask_utils.decode(rle).shape == (10, 5)
    assert mask_utils.decode(api.annToRLE(anns[2]))[:, :2].all()
    assert anns[2]["iscrowd"] == 1
    assert api.annToMask(anns[1]).sum() > 0

    classification = json.loads((tmp_path / "annotations" / "labels_val.json").read_text())
    assert [(a["id"], a["category_id"]) for a in classification["annotations"]] == [(1, 1), (2, 2)]
    assert all("bbox" not in a for a in classification["annotations"])


def make_sample(key: str, split: str | None, labels: list[SourceLabel]) -> SourceSample:
    return SourceSample(key=key, path=None, labels=labels, split=split, width=20, height=10)


def test_export_ids_layout_and_hand_built_labels(tmp_path: Path) -> None:
    mask = {"size": [10, 20], "counts": mask_utils.encode(
        np.asfortranarray(np.pad(np.ones((2, 3), np.uint8), ((1, 7), (4, 13)))))["counts"].decode()}
    items = [
        ExportItem(make_sample("train/x.jpg", "train", [
            SourceLabel(LabelKind.BOX, "cat", bbox=(1, 2, 3, 4), source_id="7"),
            SourceLabel(LabelKind.BOX, "cat", bbox=(2, 2, 3, 4), source_id="7"),   # duplicate
            SourceLabel(LabelKind.MASK, "dog", mask=mask, iscrowd=True, source_id="0:1"),
            SourceLabel(LabelKind.CLASSIFICATION, "dog", source_id="labels:4"),
        ]), "h1"),
        ExportItem(make_sample("y.jpg", "train", [
            SourceLabel(LabelKind.POLYGON, "dog", polygon=[[1, 1, 4, 1, 4, 4]], source_id=None),
        ]), "h2"),
        ExportItem(make_sample("z.jpg", None, [
            SourceLabel(LabelKind.KEYPOINTS, "cat", keypoints=[1, 1, 2, 5, 6, 1, 0, 0, 0]),
        ]), "h3"),
    ]
    placed: list[tuple[str, Path]] = []

    class Recorder(ImageWriter):
        def place(self, content_hash: str, dest: Path) -> None:
            placed.append((content_hash, dest))

    coco.write(tmp_path, items, ["cat", "dog"], Recorder(lambda h: h, ImagesMode.COPY))
    assert placed == [("h3", tmp_path / "images" / "z.jpg"),
                      ("h1", tmp_path / "images" / "train" / "x.jpg"),
                      ("h2", tmp_path / "images" / "y.jpg")]
    train = json.loads((tmp_path / "annotations" / "instances_train.json").read_text())
    assert [(i["id"], i["file_name"]) for i in train["images"]] == [(1, "x.jpg"), (2, "y.jpg")]
    assert [(a["id"], a["image_id"], a["category_id"]) for a in train["annotations"]] == [
        (7, 1, 1), (8, 1, 1), (9, 1, 2), (10, 2, 2)]
    mask_ann = train["annotations"][2]
    assert mask_ann["segmentation"] == mask and mask_ann["iscrowd"] == 1
    assert mask_ann["bbox"] == [4, 1, 3, 2] and mask_ann["area"] == 6
    assert train["annotations"][3]["bbox"] == [1, 1, 3, 3] and train["annotations"][3]["area"] == 4.5
    labels = json.loads((tmp_path / "annotations" / "labels_train.json").read_text())
    assert [(a["id"], a["image_id"]) for a in labels["annotations"]] == [(4, 1)]
    default = json.loads((tmp_path / "annotations" / "instances_default.json").read_text())
    [kp] = default["annotations"]
    assert kp["num_keypoints"] == 2 and kp["bbox"] == [1, 1, 4, 5]

    # what was written reads back with the same keys and splits
    for key in ("train/x.jpg", "y.jpg", "z.jpg"):
        make_jpeg(tmp_path / "images" / key, 20, 10)
    back = coco.read(tmp_path)
    assert back.problems == []
    assert [(s.key, s.split, len(s.labels)) for s in back.samples] == [
        ("train/x.jpg", "train", 4), ("y.jpg", "train", 1), ("z.jpg", None, 1)]


def test_export_refuses_unknown_class_and_unsafe_key(tmp_path: Path) -> None:
    bad_class = [ExportItem(make_sample("a.jpg", None, [SourceLabel(LabelKind.BOX, "zebra",
                                                                    bbox=(0, 0, 1, 1))]), "h")]
    with pytest.raises(InvalidInput, match="zebra"):
        coco.write(tmp_path / "o1", bad_class, ["cat"], PathWriter(ImagesMode.NONE))
    escaping = [ExportItem(make_sample("../evil.jpg", None, []), "h")]
    with pytest.raises(InvalidInput, match="escapes"):
        coco.write(tmp_path / "o2", escaping, ["cat"], PathWriter(ImagesMode.NONE))
    with pytest.raises(InvalidInput, match="split"):
        coco.write(tmp_path / "o3", [ExportItem(make_sample("a.jpg", "../x", []), "h")], [],
                   PathWriter(ImagesMode.NONE))


def test_export_refuses_ambiguous_file_names(tmp_path: Path) -> None:
    both_defaults = [ExportItem(make_sample("a.jpg", None, []), "h1"),
                     ExportItem(make_sample("b.jpg", "default", []), "h2")]
    with pytest.raises(InvalidInput, match="default"):
        coco.write(tmp_path / "o1", both_defaults, [], PathWriter(ImagesMode.NONE))
    # "a.jpg" in split train would be read back as images/train/a.jpg, another sample's image
    shadowed = [ExportItem(make_sample("a.jpg", "train", []), "h1"),
                ExportItem(make_sample("train/a.jpg", "val", []), "h2")]
    with pytest.raises(InvalidInput, match="read back"):
        coco.write(tmp_path / "o2", shadowed, [], PathWriter(ImagesMode.NONE))
