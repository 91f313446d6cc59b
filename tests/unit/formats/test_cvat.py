"""CVAT for images 1.1 importer: peer exports and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from viewfinder.core.types import LabelKind, SourceDataset, SourceSample
from viewfinder.errors import InvalidInput
from tests.peer import PEER as ALL_PEER
from viewfinder.formats import cvat

PEER = ALL_PEER / "cvat_dataset" / "for_images"


@pytest.fixture
def peer() -> Path:
    if not PEER.is_dir():
        pytest.skip(f"peer fixtures not found at {PEER}")
    return PEER


META = """
  <meta>
    <task>
      <labels>
        <label><name>car</name>
          <attributes>
            <attribute><name>parked</name><input_type>checkbox</input_type></attribute>
            <attribute><name>doors</name><input_type>number</input_type></attribute>
            <attribute><name>plate</name><input_type>text</input_type></attribute>
          </attributes>
        </label>
        <label><name>person</name></label>
      </labels>
    </task>
  </meta>"""


def make_jpeg(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (10, 200, 30)).save(path, "JPEG")


def make_cvat(root: Path, body: str, *, images: tuple[str, ...] = ("a.jpg", "b.jpg"),
              name: str = "annotations.xml", meta: str = META) -> Path:
    """A task export: ``<name>`` with ``body`` as its <image> elements, JPEGs in images/."""
    for image in images:
        make_jpeg(root / "images" / image, 20, 10)
    path = root / name
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n'
                    f"  <version>1.1</version>{meta}\n{body}\n</annotations>\n")
    return path


def image(iid: int, name: str, shapes: str = "", **attrs: str) -> str:
    extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
    return f'  <image id="{iid}" name="{name}" width="20" height="10"{extra}>{shapes}</image>'


BOX = '<box label="car" xtl="1" ytl="1" xbr="5" ybr="4" occluded="0"/>'


def by_key(ds: SourceDataset) -> dict[str, SourceSample]:
    return {s.key: s for s in ds.samples}


# --------------------------------------------------------------------------- detect


def test_detect(peer: Path, tmp_path: Path) -> None:
    assert cvat.detect(peer / "export_project")
    assert cvat.detect(peer / "export_task")
    assert not cvat.detect(tmp_path)
    (tmp_path / "a.xml").write_text("<annotation><filename>a.jpg</filename></annotation>")  # VOC
    assert not cvat.detect(tmp_path)
    coco_peer = peer.parents[1] / "coco_dataset" / "coco"
    assert not cvat.detect(coco_peer)


# --------------------------------------------------------------------------- peer exports


def test_reads_peer_project_export(peer: Path) -> None:
    ds = cvat.read(peer / "export_project")
    assert ds.problems == []
    assert ds.format == "cvat"
    assert ds.classes == ["label1", "label2"]
    assert [(s.key, s.split, s.width, s.height) for s in ds.samples] == [
        ("Test/img0.jpg", "Test", 8, 8), ("Test/img1.jpg", "Test", 10, 10),
        ("Train/img0.jpg", "Train", 8, 8), ("Train/img1.jpg", "Train", 10, 10),
        ("Validation/img0.jpg", "Validation", 8, 8), ("Validation/img1.jpg", "Validation", 10, 10),
    ]
    samples = by_key(ds)
    assert samples["Train/img0.jpg"].path == str(peer / "export_project" / "images" / "Train" / "img0.jpg")

    box, polyline = samples["Train/img0.jpg"].labels
    assert (box.kind, box.class_name, box.bbox, box.source_id) == (
        LabelKind.BOX, "label1", (0, 2, 4, 2), "0:0")
    assert box.attributes == {"occluded": True, "z_order": 1, "a1": True, "a2": "v3",
                              "a3": "0003", "a4": 2.4}
    assert (polyline.kind, polyline.class_name, polyline.source_id) == (
        LabelKind.KEYPOINTS, "label2", "0:1")
    assert polyline.keypoints == [1, 2, 2, 3, 4, 2, 5, 6, 2, 7, 8, 2]
    assert polyline.attributes == {"cvat_type": "polyline"}

    polygon, points = samples["Validation/img1.jpg"].labels
    assert (polygon.kind, polygon.class_name, polygon.polygon, polygon.bbox) == (
        LabelKind.POLYGON, "label1", [[1, 2, 3, 4, 6, 5]], (1, 2, 5, 3))
    assert polygon.attributes == {"z_order": 1}
    assert (points.kind, points.keypoints, points.source_id) == (
        LabelKind.KEYPOINTS, [1, 2, 2, 3, 4, 2, 5, 6, 2], "1:1")
    assert points.attributes == {"z_order": 2, "cvat_type": "points"}


def test_reads_peer_task_export_and_reports_unlabeled_shapes(peer: Path) -> None:
    ds = cvat.read(peer / "export_task")
    assert ds.classes == ["label1", "label2"]
    # Datumaro names the file after its subset: train.xml → split "train"
    assert [(s.key, s.split) for s in ds.samples] == [("img0.jpg", "train"), ("img1.jpg", "train")]
    assert [(p.path, p.record, p.message) for p in ds.problems] == [
        ("train.xml", "image id=0 (img0.jpg), polyline #1", "shape has no label"),
        ("train.xml", "image id=1 (img1.jpg), polygon #0", "shape has no label"),
    ]
    img0, img1 = ds.samples
    assert [(lab.kind, lab.class_name) for lab in img0.labels] == [(LabelKind.BOX, "label1")]
    assert [(lab.kind, lab.source_id) for lab in img1.labels] == [(LabelKind.KEYPOINTS, "1:1")]


def test_split_argument_overrides(peer: Path) -> None:
    ds = cvat.read(peer / "export_project", split="all")
    assert {s.split for s in ds.samples} == {"all"}
    assert len(ds.samples) == 6


# --------------------------------------------------------------------------- shapes


def test_attributes_are_typed_by_the_label_spec(tmp_path: Path) -> None:
    make_cvat(tmp_path, image(0, "a.jpg", (
        '<box label="car" xtl="1" ytl="1" xbr="5" ybr="4" occluded="1" z_order="3" '
        'source="manual" group_id="2">'
        '<attribute name="parked">false</attribute><attribute name="doors">4</attribute>'
        '<attribute name="plate">0042</attribute><attribute name="extra">true</attribute></box>')))
    [label] = cvat.read(tmp_path).samples[0].labels
    assert label.attributes == {"occluded": True, "z_order": 3, "source": "manual",
                                "group_id": 2, "parked": False, "doors": 4, "plate": "0042",
                                "extra": True}
    assert label.bbox == (1, 1, 4, 3)


def test_tag_mask_rotated_box_and_explicit_ids(tmp_path: Path) -> None:
    # 3x2 mask box at left=2, top=1; runs (row-major): 1 off, 4 on, 1 off
    shapes = ('<tag label="person"/>'
              '<mask label="car" rle="1, 4, 1" left="2" top="1" width="3" height="2"/>'
              '<box label="car" xtl="2" ytl="2" xbr="6" ybr="4" rotation="90" id="77"/>')
    make_cvat(tmp_path, image(3, "a.jpg", shapes), images=("a.jpg",))
    ds = cvat.read(tmp_path)
    assert ds.problems == []
    tag, mask, rotated = ds.samples[0].labels
    assert (tag.kind, tag.class_name, tag.bbox, tag.source_id) == (
        LabelKind.CLASSIFICATION, "person", None, "3:0")

    assert mask.kind is LabelKind.MASK and mask.source_id == "3:1"
    pixels = mask_utils.decode({"size": mask.mask["size"], "counts": mask.mask["counts"].encode()})
    expected = np.zeros((10, 20), np.uint8)
    expected[1, 3:5] = 1
    expected[2, 2:4] = 1
    assert (pixels == expected).all()
    assert mask.bbox == (2, 1, 3, 2)

    assert rotated.kind is LabelKind.POLYGON and rotated.source_id == "77"
    assert rotated.attributes == {"cvat_type": "box", "rotation": 90.0}
    assert rotated.bbox == pytest.approx((3, 1, 2, 4))


# --------------------------------------------------------------------------- bad input


def test_malformed_xml_names_file_and_line(tmp_path: Path) -> None:
    path = make_cvat(tmp_path, image(0, "a.jpg", BOX) + "\n  <image id='1' name='b.jpg'>\n</annotations>")
    bad_line = path.read_text().splitlines().index("</annotations>") + 1  # closes the open <image>
    make_cvat(tmp_path, image(0, "a.jpg", BOX), name="val.xml")
    ds = cvat.read(tmp_path)
    [problem] = ds.problems
    assert problem.path == "annotations.xml"
    assert f"malformed XML at line {bad_line}, column 2: mismatched tag;" in problem.message
    # nothing from the broken file; the good file still loads
    assert [(s.key, s.split) for s in ds.samples] == [("a.jpg", "val")]


def test_xml_entities_are_refused(tmp_path: Path) -> None:
    make_jpeg(tmp_path / "images" / "a.jpg", 20, 10)
    (tmp_path / "annotations.xml").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY big "boom">]>\n'
        "<annotations><version>1.1</version>"
        '<image id="0" name="&big;.jpg" width="20" height="10"/></annotations>')
    ds = cvat.read(tmp_path)
    assert ds.samples == []
    assert "forbidden XML construct" in ds.problems[0].message


def test_unknown_label(tmp_path: Path) -> None:
    make_cvat(tmp_path, image(0, "a.jpg", BOX + '<box label="truck" xtl="1" ytl="1" xbr="2" ybr="2"/>'))
    ds = cvat.read(tmp_path)
    [problem] = ds.problems
    assert (problem.path, problem.record) == ("annotations.xml", "image id=0 (a.jpg), box #1")
    assert "unknown label 'truck'" in problem.message
    assert [lab.class_name for lab in ds.samples[0].labels] == ["car"]
    assert ds.classes == ["car", "person"]


def test_inverted_box(tmp_path: Path) -> None:
    make_cvat(tmp_path, image(0, "a.jpg", '<box label="car" xtl="5" ytl="1" xbr="2" ybr="4"/>' + BOX))
    ds = cvat.read(tmp_path)
    [problem] = ds.problems
    assert problem.record == "image id=0 (a.jpg), box #0" and "xbr < xtl" in problem.message
    assert [lab.source_id for lab in ds.samples[0].labels] == ["0:1"]


@pytest.mark.parametrize(("shape", "needle"), [
    ('<polygon label="car" points="1,2;3,4"/>', "at least 3 point"),
    ('<points label="car" points="1,2;nan,4"/>', "not finite"),
    ('<mask label="car" rle="1, 2" left="0" top="0" width="3" height="2"/>', "covers 3 pixels"),
    ('<mask label="car" rle="6" left="18" top="0" width="3" height="2"/>', "outside"),
    ('<ellipse label="car" cx="3" cy="3" rx="1" ry="1"/>', "unsupported shape <ellipse>"),
])
def test_bad_shapes(tmp_path: Path, shape: str, needle: str) -> None:
    make_cvat(tmp_path, image(0, "a.jpg", shape + BOX))
    ds = cvat.read(tmp_path)
    [problem] = ds.problems
    assert problem.record.endswith("#0") and needle in problem.message
    assert len(ds.samples[0].labels) == 1


def test_missing_image_file(tmp_path: Path) -> None:
    make_cvat(tmp_path, image(0, "a.jpg", BOX) + image(1, "gone.jpg", BOX))
    ds = cvat.read(tmp_path)
    [problem] = ds.problems
    assert (problem.path, problem.record) == ("annotations.xml", "image id=1 (gone.jpg)")
    assert "not found" in problem.message
    assert [s.key for s in ds.samples] == ["a.jpg"]


@pytest.mark.parametrize(("name", "needle"), [("../../secret.jpg", "escapes"),
                                              ("/etc/secret.jpg", "absolute")])
def test_hostile_image_names(tmp_path: Path, name: str, needle: str) -> None:
    root = tmp_path / "ds"
    make_jpeg(tmp_path / "secret.jpg", 20, 10)
    make_cvat(root, image(0, "a.jpg", BOX) + image(1, name, BOX))
    ds = cvat.read(root)
    [problem] = ds.problems
    assert problem.record == f"image id=1 ({name})" and needle in problem.message
    assert [s.key for s in ds.samples] == ["a.jpg"]


def test_duplicate_image_ids(tmp_path: Path) -> None:
    make_cvat(tmp_path, image(0, "a.jpg", BOX) + image(0, "b.jpg", BOX))
    ds = cvat.read(tmp_path)
    [problem] = ds.problems
    assert problem.record == "image id=0 (b.jpg)" and "duplicate image id" in problem.message
    assert [s.key for s in ds.samples] == ["a.jpg"]


def test_same_file_named_twice(tmp_path: Path) -> None:
    make_cvat(tmp_path, image(0, "a.jpg", BOX) + image(1, "a.jpg", BOX))
    ds = cvat.read(tmp_path)
    [problem] = ds.problems
    assert problem.record == "image id=1 (a.jpg)" and "already named" in problem.message
    assert len(ds.samples) == 1


def test_tracks_are_reported(tmp_path: Path) -> None:
    make_cvat(tmp_path, image(0, "a.jpg", BOX) + '<track id="0" label="car"></track>')
    ds = cvat.read(tmp_path)
    [problem] = ds.problems
    assert "1 <track> element(s)" in problem.message
    assert len(ds.samples) == 1


def test_not_a_folder_and_no_xml(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        cvat.read(tmp_path / "missing")
    [problem] = cvat.read(tmp_path).problems
    assert "no CVAT XML files" in problem.message


def test_cvat_project_exports_to_coco_without_loss(peer: Path, tmp_path: Path) -> None:
    from viewfinder.formats import coco
    from viewfinder.formats.base import ExportItem, ImagesMode, ImageWriter

    first = cvat.read(peer / "export_project")
    items = [ExportItem(sample=s, content_hash=s.path or "") for s in first.samples]
    coco.write(tmp_path, items, first.classes, ImageWriter(lambda h: h, ImagesMode.COPY))
    second = coco.read(tmp_path)
    assert second.problems == []
    assert [(s.key, s.split, s.width, s.height) for s in second.samples] == \
           [(s.key, s.split, s.width, s.height) for s in first.samples]
    for a, b in zip(first.samples, second.samples, strict=True):
        assert [(lab.kind, lab.class_name, lab.bbox, lab.polygon, lab.keypoints, lab.attributes)
                for lab in a.labels] == \
               [(lab.kind, lab.class_name, lab.bbox, lab.polygon, lab.keypoints, lab.attributes)
                for lab in b.labels]
