"""Pascal VOC importer and exporter: Datumaro's peer datasets, bad input, masks, round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from builders import PEER, dataset_view, export_items, make_image, tree, write_text
from PIL import Image
from pycocotools import mask as mask_utils

from viewfinder.core.types import LabelKind, SourceLabel, SourceSample
from viewfinder.formats import voc
from viewfinder.formats.base import ExportItem, ImagesMode, ImageWriter

VOC_PEER = PEER / "voc_dataset"


@pytest.fixture
def peer() -> Path:
    if not VOC_PEER.is_dir():
        pytest.skip(f"peer fixtures not found at {VOC_PEER}")
    return VOC_PEER


def by_kind(sample: SourceSample, kind: LabelKind) -> list[SourceLabel]:
    return [lb for lb in sample.labels if lb.kind is kind]


# ----------------------------------------------------------------------------- peer datasets


def test_reads_voc_dataset1_boxes_parts_actions_image_labels_and_mask(peer: Path) -> None:
    root = peer / "voc_dataset1"
    assert voc.detect(root)
    ds = voc.read(root)
    assert ds.problems == []
    assert ds.classes == [*voc.VOC_CLASSES, "ignored"]  # no labelmap: VOC's 20 + names used
    first, second = ds.samples
    assert (first.key, first.split, first.width, first.height) == ("2007_000001.jpg", "train", 20, 10)
    assert first.path == str((root / "JPEGImages" / "2007_000001.jpg").absolute())

    cat, person = by_kind(first, LabelKind.BOX)
    # <bndbox> 1,2,3,4 is 1-based inclusive: x = 1 - 1, w = 3 - 1 + 1
    assert (cat.class_name, cat.bbox) == ("cat", (0.0, 1.0, 3.0, 3.0))
    assert cat.attributes == {"truncated": True, "occluded": False, "difficult": False, "pose": "Unspecified"}
    assert (person.class_name, person.bbox) == ("person", (3.0, 4.0, 3.0, 3.0))
    assert person.attributes["parts"] == [{"name": "head", "bbox": [4.5, 5.0, 3.0, 3.0]}]
    assert person.attributes["actions"] == {
        "other": True, "jumping": False, "phoning": True, "playinginstrument": False, "reading": True,
        "ridingbike": False, "ridinghorse": True, "running": False, "takingphoto": True,
        "usingcomputer": False, "walking": True}
    assert person.attributes["difficult"] is False  # absent flags read as False

    # <class>_train.txt positives without an object of that class ("person" has one).
    assert [lb.class_name for lb in by_kind(first, LabelKind.CLASSIFICATION)] == [
        "aeroplane", "bird", "bottle", "car", "chair", "diningtable", "horse", "sheep", "train", "ignored"]

    [mask] = by_kind(first, LabelKind.MASK)  # instance 1 over the whole image, class colour (0,128,0)
    assert mask.class_name == "bicycle"
    assert mask.bbox == (0.0, 0.0, 20.0, 10.0)
    assert mask.mask == rle(np.ones((10, 20), bool))

    # An image without annotation XML is a sample (split from test.txt) without labels.
    assert (second.key, second.split, second.labels) == ("2007_000002.jpg", "test", [])


def test_reads_voc_dataset2_labelmap_trainval_and_missing_images(peer: Path) -> None:
    ds = voc.read(peer / "voc_dataset2")
    assert ds.classes[:3] == ["background", "aeroplane", "bicycle"] and ds.classes[-1] == "ignored"
    assert len(ds.classes) == 22
    # "@.xml" sorts first and has no objects; there is no JPEGImages/ at all.
    assert [(s.key, s.path, s.split) for s in ds.samples] == [
        (f"{n}.jpg", None, "trainval") for n in ("@", "a", "b", "c", "d")]
    assert sorted((p.path, p.record) for p in ds.problems) == [
        (f"Annotations/{n}.xml", f"image {n}.jpg") for n in ("@", "a", "b", "c", "d")]
    assert all("does not exist" in p.message for p in ds.problems)
    labels = {s.key: [(lb.class_name, lb.bbox, lb.attributes["occluded"]) for lb in s.labels] for s in ds.samples}
    assert labels == {
        "@.jpg": [],
        "a.jpg": [("background", (0.0, 1.0, 4.0, 5.0), True)],
        "b.jpg": [("aeroplane", (1.0, 1.0, 6.0, 5.0), True)],
        "c.jpg": [("bicycle", (2.0, 0.0, 9.0, 6.0), False)],
        "d.jpg": [("bird", (3.0, 3.0, 5.0, 5.0), False)],
    }


def test_reads_voc_dataset3_with_comments_in_lists(peer: Path) -> None:
    ds = voc.read(peer / "voc_dataset3")
    assert ds.problems == []
    [s] = ds.samples
    assert (s.key, s.split) == ("2007_000001.jpg", "train")
    assert [(lb.class_name, lb.bbox) for lb in s.labels] == [("cat", (0.0, 1.0, 3.0, 3.0))]


@pytest.mark.parametrize("name", ["voc_dataset1", "voc_dataset2", "voc_dataset3"])
def test_peer_round_trip_keeps_everything_and_is_deterministic(peer: Path, tmp_path: Path, name: str) -> None:
    first = voc.read(peer / name)
    mode = ImagesMode.NONE if name == "voc_dataset2" else ImagesMode.COPY  # it has no images
    items, writer = export_items(first, mode)
    voc.write(tmp_path / "a", items, first.classes, writer)
    voc.write(tmp_path / "b", items, first.classes, writer)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")

    second = voc.read(tmp_path / "a")
    assert second.classes == first.classes
    assert [(p.path, p.record) for p in second.problems] == [(p.path, p.record) for p in first.problems]
    assert dataset_view(second) == dataset_view(first)


def test_export_inverts_the_one_based_convention(peer: Path, tmp_path: Path) -> None:
    ds = voc.read(peer / "voc_dataset1")
    items, writer = export_items(ds)
    voc.write(tmp_path, items, ds.classes, writer)
    xml = (tmp_path / "Annotations" / "2007_000001.xml").read_text()
    assert "<xmin>1</xmin>\n      <ymin>2</ymin>\n      <xmax>3</xmax>\n      <ymax>4</ymax>" in xml
    assert "<xmin>5.5</xmin>" in xml and "<xmax>7.5</xmax>" in xml  # the head part
    assert (tmp_path / "ImageSets" / "Main" / "train.txt").read_text() == "2007_000001\n"
    assert (tmp_path / "ImageSets" / "Main" / "test.txt").read_text() == "2007_000002\n"
    assert (tmp_path / "ImageSets" / "Main" / "aeroplane_train.txt").read_text() == "2007_000001  1\n"
    assert (tmp_path / "ImageSets" / "Main" / "cat_train.txt").read_text() == "2007_000001  1\n"
    assert (tmp_path / "ImageSets" / "Main" / "dog_test.txt").read_text() == "2007_000002 -1\n"
    labelmap = (tmp_path / "labelmap.txt").read_text().splitlines()
    assert labelmap[0] == "# label:color_rgb:parts:actions"
    assert "aeroplane:128,0,0::" in labelmap and "ignored:224,224,192::" in labelmap
    assert any(line.startswith("person:192,128,128:head:jumping,other,") for line in labelmap)
    seg = np.asarray(Image.open(tmp_path / "SegmentationClass" / "2007_000001.png"))
    assert (seg == (0, 128, 0)).all()  # bicycle's VOC colour, as in the source


# ----------------------------------------------------------------------------- bad input


def voc_source(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    for name in ("good", "broken", "nobox", "swapped", "outside", "gone_xml"):
        make_image(root / "JPEGImages" / f"{name}.jpg", (50, 40))
    (root / "JPEGImages" / "gone_xml.jpg").unlink()
    return root


def annotation(filename: str, *objects: str, size: tuple[int, int] = (50, 40)) -> str:
    return (f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width>"
            f"<height>{size[1]}</height><depth>3</depth></size>{''.join(objects)}</annotation>")


def obj(name: str, box: tuple[float, float, float, float] | None = (1, 1, 10, 10), extra: str = "") -> str:
    bb = "" if box is None else ("<bndbox>" + "".join(
        f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box)) + "</bndbox>")
    return f"<object><name>{name}</name>{bb}{extra}</object>"


def test_bad_records_are_problems_and_good_records_come_through(tmp_path: Path) -> None:
    root = voc_source(tmp_path)
    ann = root / "Annotations"
    write_text(ann / "good.xml", annotation("good.jpg", obj("dog"), obj("cat", extra=(
        "<difficult>1</difficult><attributes><attribute><name>color</name><value>brown</value>"
        "</attribute><attribute><name>age</name><value>3</value></attribute></attributes>"))))
    write_text(ann / "broken.xml", "<annotation>\n  <filename>broken.jpg</filename>\n  <object>\n</annotation>\n")
    write_text(ann / "nobox.xml", annotation("nobox.jpg", obj("dog", None), obj("dog")))
    write_text(ann / "swapped.xml", annotation("swapped.jpg", obj("dog", (10, 1, 5, 10)), obj("dog", (1, 1, 2, "x"))))
    write_text(ann / "outside.xml", annotation("outside.jpg", obj("dog", (1, 1, 51, 10)), obj("dog", (1, 1, 50, 40))))
    write_text(ann / "gone_xml.xml", annotation("gone_xml.jpg", obj("dog")))
    write_text(ann / "escape.xml", annotation("../../secret.jpg", obj("dog")))
    write_text(root / "ImageSets" / "Main" / "train.txt", "good\nbroken\n../../etc/passwd\n/etc/passwd\n")

    ds = voc.read(root)
    problems = {(p.path, p.record): p.message for p in ds.problems}
    assert problems.keys() == {
        ("Annotations/broken.xml", "line 4"),
        ("Annotations/nobox.xml", "object 1"),
        ("Annotations/swapped.xml", "object 1"), ("Annotations/swapped.xml", "object 2"),
        ("Annotations/outside.xml", "object 1"),
        ("Annotations/gone_xml.xml", "image gone_xml.jpg"),
        ("Annotations/escape.xml", "filename"),
        ("ImageSets/Main/train.txt", "line 3"), ("ImageSets/Main/train.txt", "line 4"),
    }
    assert problems[("Annotations/broken.xml", "line 4")].startswith("malformed XML: mismatched tag")
    assert problems[("Annotations/nobox.xml", "object 1")] == "missing <bndbox>"
    assert "xmax < xmin" in problems[("Annotations/swapped.xml", "object 1")]
    assert "non-numeric <ymax> 'x'" == problems[("Annotations/swapped.xml", "object 2")]
    assert "outside the image size 50x40" in problems[("Annotations/outside.xml", "object 1")]
    assert "escapes" in problems[("Annotations/escape.xml", "filename")]
    assert "escapes" in problems[("ImageSets/Main/train.txt", "line 3")]
    assert "absolute" in problems[("ImageSets/Main/train.txt", "line 4")]

    samples = {s.key: s for s in ds.samples}
    # broken.xml is unreadable: the sample is left out entirely (no half-read labels),
    # even though its image is in JPEGImages/.
    assert sorted(samples) == ["gone_xml.jpg", "good.jpg", "nobox.jpg", "outside.jpg", "swapped.jpg"]
    assert samples["gone_xml.jpg"].path is None and len(samples["gone_xml.jpg"].labels) == 1
    assert [lb.bbox for lb in samples["nobox.jpg"].labels] == [(0.0, 0.0, 10.0, 10.0)]
    assert samples["swapped.jpg"].labels == []
    assert [lb.bbox for lb in samples["outside.jpg"].labels] == [(0.0, 0.0, 50.0, 40.0)]
    dog, cat = samples["good.jpg"].labels
    assert samples["good.jpg"].split == "train"
    assert cat.attributes == {"truncated": False, "occluded": False, "difficult": True,
                              "color": "brown", "age": 3}


def test_undeclared_class_with_a_labelmap_is_a_problem(tmp_path: Path) -> None:
    root = voc_source(tmp_path)
    write_text(root / "labelmap.txt", "# label:color_rgb:parts:actions\ndog:10,20,30::\n")
    write_text(root / "Annotations" / "good.xml", annotation("good.jpg", obj("dog"), obj("unicorn")))
    ds = voc.read(root)
    assert ds.classes == ["dog"]
    [p] = ds.problems
    assert (p.path, p.record) == ("Annotations/good.xml", "object 2") and "unicorn" in p.message
    [good] = [s for s in ds.samples if s.key == "good.jpg"]
    assert [lb.class_name for lb in good.labels] == ["dog"]


def test_xml_entity_bomb_is_refused(tmp_path: Path) -> None:
    root = voc_source(tmp_path)
    write_text(root / "Annotations" / "good.xml", (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
        "<annotation><filename>&lol2;</filename></annotation>"))
    ds = voc.read(root)
    [p] = ds.problems
    assert p.path == "Annotations/good.xml" and "unsafe XML" in p.message
    assert "good.jpg" not in {s.key for s in ds.samples}


def test_wrongly_sized_mask_leaves_the_sample_out(tmp_path: Path) -> None:
    root = voc_source(tmp_path)
    write_text(root / "Annotations" / "good.xml", annotation("good.jpg", obj("dog")))
    make_image(root / "SegmentationObject" / "good.png", (10, 10), (128, 0, 0))
    make_image(root / "SegmentationClass" / "good.png", (10, 10), (64, 0, 128))
    ds = voc.read(root)
    [p] = ds.problems
    assert p.path == "SegmentationObject/good.png" and "10x10 but the image is 50x40" in p.message
    assert "good.jpg" not in {s.key for s in ds.samples}


def test_split_lists_precedence_and_default(tmp_path: Path) -> None:
    root = voc_source(tmp_path)
    main = root / "ImageSets" / "Main"
    write_text(main / "trainval.txt", "good\nbroken\nnobox\n")
    write_text(main / "val.txt", "broken\n")
    write_text(main / "train.txt", "good\n")
    write_text(main / "default.txt", "swapped\n")
    ds = voc.read(root)
    assert ds.problems == []
    assert {s.key: s.split for s in ds.samples} == {
        "good.jpg": "train", "broken.jpg": "val", "nobox.jpg": "trainval", "swapped.jpg": None,
        "outside.jpg": None}
    assert {s.split for s in voc.read(root, split="x").samples} == {"x"}


# ----------------------------------------------------------------------------- export


def rle(mask: np.ndarray) -> dict[str, object]:
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(mask.shape), "counts": encoded["counts"].decode()}


def test_export_round_trip_of_keys_in_folders_masks_attributes_and_image_labels(tmp_path: Path) -> None:
    src = make_image(tmp_path / "src.jpg", (8, 6))
    m1 = np.zeros((6, 8), bool)
    m1[1:3, 1:4] = True
    m2 = np.zeros((6, 8), bool)
    m2[4:6, 5:8] = True
    samples = [
        SourceSample(key="city/street 1.jpg", path=None, split="train", width=8, height=6, labels=[
            SourceLabel(LabelKind.BOX, "car", bbox=(0.5, 1.25, 3.0, 2.0),
                        attributes={"truncated": False, "occluded": True, "difficult": False,
                                    "color": "red", "parked": True, "doors": 4}),
            SourceLabel(LabelKind.MASK, "car", mask=rle(m1), bbox=(1.0, 1.0, 3.0, 2.0)),
            SourceLabel(LabelKind.MASK, "person", mask=rle(m2), bbox=(5.0, 4.0, 3.0, 2.0)),
            SourceLabel(LabelKind.CLASSIFICATION, "daytime"),
        ]),
        SourceSample(key="city__street 1.png", path=None, split=None, width=8, height=6),  # id clash
    ]
    items = [ExportItem(s, f"h{i}") for i, s in enumerate(samples)]
    writer = ImageWriter(lambda h: str(src), ImagesMode.COPY)
    voc.write(tmp_path / "out", items, ["car", "person", "daytime"], writer)
    out = tmp_path / "out"
    assert (out / "Annotations" / "city__street_1.xml").is_file()
    assert (out / "Annotations" / "city__street_1-1.xml").is_file()
    assert "<filename>city/street 1.jpg</filename>" in (out / "Annotations" / "city__street_1.xml").read_text()
    assert (out / "ImageSets" / "Main" / "default.txt").read_text() == "city__street_1-1\n"
    assert (out / "ImageSets" / "Segmentation" / "train.txt").read_text() == "city__street_1\n"
    assert (out / "JPEGImages" / "city" / "street 1.jpg").is_file()

    ds = voc.read(out)
    assert ds.problems == []
    assert ds.classes == ["car", "person", "daytime"]
    got = {s.key: s for s in ds.samples}
    assert sorted(got) == ["city/street 1.jpg", "city__street 1.png"]
    assert got["city__street 1.png"].split is None and got["city__street 1.png"].labels == []
    back = got["city/street 1.jpg"]
    assert back.split == "train"
    [box] = by_kind(back, LabelKind.BOX)
    assert box.bbox == (0.5, 1.25, 3.0, 2.0)
    assert box.attributes == samples[0].labels[0].attributes
    assert [(lb.class_name, lb.mask, lb.bbox) for lb in by_kind(back, LabelKind.MASK)] == [
        ("car", rle(m1), (1.0, 1.0, 3.0, 2.0)), ("person", rle(m2), (5.0, 4.0, 3.0, 2.0))]
    assert [lb.class_name for lb in by_kind(back, LabelKind.CLASSIFICATION)] == ["daytime"]


def test_polygons_are_exported_as_boxes(tmp_path: Path) -> None:
    sample = SourceSample(key="a.jpg", path=None, width=10, height=10, labels=[
        SourceLabel(LabelKind.POLYGON, "a", polygon=[[1, 1, 5, 1, 5, 4]])])
    voc.write(tmp_path, [ExportItem(sample, "h")], ["a"], ImageWriter(str, ImagesMode.NONE))
    [lb] = voc.read(tmp_path).samples[0].labels
    assert (lb.kind, lb.bbox) == (LabelKind.BOX, (1.0, 1.0, 4.0, 3.0))


def test_palette_helpers() -> None:
    assert voc.voc_color(0) == (0, 0, 0)
    assert voc.voc_color(15) == (192, 128, 128)  # person
    assert all(voc.voc_index(voc.voc_color(i)) == i for i in (1, 21, 255, 256, 4000))
    colors = voc.class_colors(["background", "cat", "zebra", "ignored"])
    assert colors == {"background": (0, 0, 0), "cat": (64, 0, 0), "zebra": voc.voc_color(21),
                      "ignored": (224, 224, 192)}


def test_detect(tmp_path: Path, peer: Path) -> None:
    assert not voc.detect(tmp_path)
    make_image(tmp_path / "JPEGImages" / "a.jpg")
    assert not voc.detect(tmp_path)
    write_text(tmp_path / "ImageSets" / "Main" / "train.txt", "a\n")
    assert voc.detect(tmp_path)
    assert not voc.detect(PEER / "yolo_dataset" / "strict")


def palette_png(path: Path, index: np.ndarray) -> None:
    """A real-VOC style segmentation PNG: mode P with the VOC palette."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(index.astype(np.uint8))
    im = im.convert("P")
    im.putpalette([v for i in range(256) for v in voc.voc_color(i)])
    im.save(path)


def test_reads_palette_pngs_instances_and_semantic_only(tmp_path: Path) -> None:
    root = voc_source(tmp_path)
    classes = np.zeros((40, 50), np.uint8)
    classes[0:10, 0:10] = 8        # cat
    classes[20:30, 20:40] = 12     # dog
    classes[10, :] = voc.VOID_INDEX  # void border: not an instance
    objects = np.zeros((40, 50), np.uint8)
    objects[0:10, 0:10] = 2
    objects[20:30, 20:40] = 1
    objects[10, :] = voc.VOID_INDEX
    palette_png(root / "SegmentationClass" / "good.png", classes)
    palette_png(root / "SegmentationObject" / "good.png", objects)
    palette_png(root / "SegmentationClass" / "nobox.png", classes)  # no SegmentationObject
    ds = voc.read(root)
    assert ds.problems == []
    got = {s.key: [(lb.class_name, lb.bbox) for lb in by_kind(s, LabelKind.MASK)] for s in ds.samples}
    # Instances in palette-index order; their class is the colour under them.
    assert got["good.jpg"] == [("dog", (20.0, 20.0, 20.0, 10.0)), ("cat", (0.0, 0.0, 10.0, 10.0))]
    # Semantic only: one mask per class present, in class order.
    assert got["nobox.jpg"] == [("cat", (0.0, 0.0, 10.0, 10.0)), ("dog", (20.0, 20.0, 20.0, 10.0))]


@pytest.mark.parametrize("name", ["voc_dataset1", "voc_dataset2", "voc_dataset3"])
def test_auto_detection_picks_voc_for_the_peers(peer: Path, name: str) -> None:
    from viewfinder.formats import registry

    assert registry.detect(peer / name).name == "voc"
