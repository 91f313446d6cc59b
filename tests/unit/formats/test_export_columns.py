"""Exports read whole versions as columns: the files must be exactly what a user expects
from the stored labels (YOLO lines, label order), images land safely, and a failed export
leaves nothing behind."""

from __future__ import annotations

import contextlib
import errno
import filecmp
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import yaml
from PIL import Image
from pycocotools import mask as mask_utils

from viewfinder.api import Workspace
from viewfinder.core.types import LabelKind, SourceLabel, SourceSample
from viewfinder.errors import StorageError
from viewfinder.formats import yolo
from viewfinder.formats.base import ExportItem, FileWriter, ImagesMode, ImageWriter
from viewfinder.services import export as export_service
from viewfinder.services import versions as vs
from viewfinder.storage.reader import label_order, sort_labels

CLASSES = ["car", "person", "dog"]


def _jpeg(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (30, 90, 160)).save(path, "JPEG")


def _coco_source(root: Path, seed: int = 3) -> dict[str, Any]:
    """A COCO folder with boxes on exact rounding ties, ids out of order (numeric and
    longer than 64 bits), a two-ring polygon, a crowd RLE mask and an image without
    labels. Returns the annotation file's content."""
    rng = random.Random(seed)
    images, annotations = [], []
    ids = rng.sample(range(1, 10_000), 60)
    for n in range(12):
        w, h = (320, 240) if n % 3 else (200, 100)
        images.append({"id": n + 1, "file_name": f"img{n:02d}.jpg", "width": w, "height": h})
        _jpeg(root / "images" / "train" / f"img{n:02d}.jpg", w, h)
        for _ in range(0 if n == 5 else rng.randint(1, 5)):
            bw, bh = rng.choice([5, 7, 2.5, 13.25, 40]), rng.choice([3, 9, 0.5, 21])
            x, y = rng.choice([0, 0.5, 1.25, w - bw]), rng.choice([0, 1, 3.5, h - bh])
            annotations.append({"id": ids.pop(), "image_id": n + 1, "category_id": rng.randint(1, 3),
                                "bbox": [x, y, bw, bh], "area": bw * bh, "iscrowd": 0,
                                "segmentation": []})
    annotations.append({"id": 18446744073709551617, "image_id": 2, "category_id": 2,
                        "bbox": [10, 10, 20, 20], "area": 400.0, "iscrowd": 0, "segmentation": []})
    annotations.append({"id": 70_001, "image_id": 3, "category_id": 3, "bbox": [0, 0, 100, 60],
                        "area": 3200.0, "iscrowd": 0,
                        "segmentation": [[0, 0, 100, 0, 100, 60], [150, 50, 200, 50, 200, 100]]})
    grid = np.zeros((240, 320), dtype=np.uint8, order="F")
    grid[10:40, 20:90] = 1
    rle = mask_utils.encode(grid)
    x, y, bw, bh = (float(v) for v in mask_utils.toBbox(rle))
    annotations.append({"id": 70_002, "image_id": 5, "category_id": 1, "bbox": [x, y, bw, bh],
                        "area": float(mask_utils.area(rle)), "iscrowd": 1,
                        "segmentation": {"size": [240, 320], "counts": rle["counts"].decode()}})
    data = {"images": images, "annotations": annotations,
            "categories": [{"id": i, "name": name} for i, name in enumerate(CLASSES, 1)]}
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_train.json").write_text(json.dumps(data))
    return data


def _num(v: float) -> str:
    s = f"{v:.6f}"
    return "0.000000" if s == "-0.000000" else s


def _expected_yolo(data: dict[str, Any], names: list[str]) -> dict[str, str]:
    """Label file text by image file name, written out from the COCO file: labels in
    the order of their (numeric) ids, coordinates normalized with ``%.6f``."""
    cats = {c["id"]: names.index(c["name"]) for c in data["categories"]}
    out = {}
    for im in data["images"]:
        w, h = im["width"], im["height"]
        lines = []
        for a in sorted((a for a in data["annotations"] if a["image_id"] == im["id"]),
                        key=lambda a: a["id"]):
            cls = cats[a["category_id"]]
            if isinstance(a["segmentation"], list) and a["segmentation"]:
                lines += [f"{cls} " + " ".join(_num(v / (w if i % 2 == 0 else h)) for i, v in enumerate(ring))
                          for ring in a["segmentation"]]
                continue
            x, y, bw, bh = a["bbox"]
            lines.append(f"{cls} {_num((x + bw / 2) / w)} {_num((y + bh / 2) / h)} "
                         f"{_num(bw / w)} {_num(bh / h)}")
        out[im["file_name"]] = "".join(f"{line}\n" for line in lines)
    return out


@pytest.fixture
def stored(ws: Workspace, tmp_path: Path) -> tuple[Workspace, dict[str, Any]]:
    data = _coco_source(tmp_path / "src")
    ws.import_source(tmp_path / "src", "d", format="coco")
    return ws, data


def _tree(root: Path) -> dict[str, bytes | str]:
    """Every file's bytes (a symlink's target) by relative path."""
    return {p.relative_to(root).as_posix(): (os.readlink(p) if p.is_symlink() else p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_symlink() or p.is_file()}


def test_yolo_export_of_stored_labels_has_the_exact_lines(stored: tuple[Workspace, dict[str, Any]],
                                                          tmp_path: Path) -> None:
    ws, data = stored
    result = ws.dataset("d").export("yolo", tmp_path / "out", images="link")
    out = tmp_path / "out"
    assert (result.samples, result.labels) == (12, len(data["annotations"]))
    names = yaml.safe_load((out / "data.yaml").read_text())["names"]
    assert list(names.values()) == CLASSES
    got = {p.with_suffix(".jpg").name: p.read_text() for p in (out / "labels").rglob("*.txt")}
    assert got == _expected_yolo(data, CLASSES)
    assert "0.007812" in "".join(got.values())  # 2.5 / 320 = 0.0078125: a tie, rounded to even
    assert got["img05.jpg"] == ""  # an image without labels still gets its (empty) file
    links = sorted((out / "images").rglob("*.jpg"))
    assert len(links) == 12 and all(p.stat().st_nlink >= 2 and not p.is_symlink() for p in links)


def test_filtered_export_keeps_every_label_of_the_matching_samples(
        stored: tuple[Workspace, dict[str, Any]], tmp_path: Path) -> None:
    ws, data = stored
    dog = CLASSES.index("dog") + 1
    with_dog = {im["file_name"] for im in data["images"]
                if any(a["image_id"] == im["id"] and a["category_id"] == dog for a in data["annotations"])}
    result = ws.dataset("d").export("yolo", tmp_path / "out", filter='label.class == "dog"', images="none")
    got = {p.with_suffix(".jpg").name: p.read_text() for p in (tmp_path / "out" / "labels").rglob("*.txt")}
    expected = _expected_yolo(data, CLASSES)
    assert 0 < result.samples == len(with_dog) < len(data["images"])
    assert got == {name: expected[name] for name in with_dog}


def test_columns_from_storage_and_objects_write_the_same_yolo_bytes(
        stored: tuple[Workspace, dict[str, Any]], tmp_path: Path) -> None:
    ws, _ = stored
    inner = ws._ws
    at = vs.resolve(inner, "d")
    items = export_service.collect_items(inner, at, None)
    objects = list(items)  # what an API user hands to the exporter: plain ExportItems
    assert [it.sample.key for it in objects] == sorted(it.sample.key for it in objects)
    writer = ImageWriter(inner.blobs.local_path, ImagesMode.COPY)
    yolo.write(tmp_path / "columns", items, [], writer)
    yolo.write(tmp_path / "objects", list(reversed(objects)), [], writer)
    assert _tree(tmp_path / "columns") == _tree(tmp_path / "objects")


def test_negative_zero_is_written_as_zero(tmp_path: Path) -> None:
    sample = SourceSample(key="a.jpg", path=None, width=200, height=100, labels=[
        SourceLabel(LabelKind.BOX, "a", bbox=(-0.0001, 0, 0.00004, 10)),  # cx = -4e-7
    ])
    yolo.write(tmp_path / "out", [ExportItem(sample, "h")], ["a"], ImageWriter(str, ImagesMode.NONE))
    assert (tmp_path / "out" / "labels" / "a.txt").read_text() == "0 0.000000 0.050000 0.000000 0.100000\n"


def test_columnar_label_order_is_the_python_label_order() -> None:
    ids = ["10", "9", "009", "0", "000", "2", "18446744073709551617", "18446744073709551616",
           "a", "", "b2", None, "-3", "1.5", "Z", "é1", "9"]
    rows = [{"sample_index": i % 2, "id": f"L{i:02d}", "source_id": sid} for i, sid in enumerate(ids)]
    rows += [{"sample_index": 0, "id": "L99", "source_id": "9"},
             {"sample_index": 1, "id": "L98", "source_id": None}]
    table = pa.Table.from_pylist(rows, schema=pa.schema([
        ("sample_index", pa.int32()), ("id", pa.string()), ("source_id", pa.string())]))
    expected = [r["id"] for r in sorted(rows, key=lambda r: (r["sample_index"], *label_order(r)))]
    assert sort_labels(table).column("id").to_pylist() == expected


def test_copy_replaces_a_link_without_writing_through_it(tmp_path: Path) -> None:
    blob = tmp_path / "store" / "blob"
    blob.parent.mkdir()
    blob.write_bytes(b"the stored image")
    other = tmp_path / "other.bin"
    other.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several kernel copy chunks
    dest = tmp_path / "out" / "sub" / "x.jpg"
    ImageWriter(lambda h: str(blob), ImagesMode.LINK).place("b", dest)
    assert os.path.samefile(dest, blob) and not dest.is_symlink()

    writer = ImageWriter(lambda h: str(other), ImagesMode.COPY, background=True)
    writer.place("o", dest)
    writer.finish()
    assert not dest.is_symlink() and dest.read_bytes() == other.read_bytes()
    assert blob.read_bytes() == b"the stored image"


@pytest.mark.parametrize(("refusal", "later_hard"), [(errno.EXDEV, False), (errno.EMLINK, True)])
def test_link_falls_back_to_a_symbolic_link_where_hard_links_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: int, later_hard: bool) -> None:
    """Another file system (EXDEV) gets symbolic links from then on; an image with too many
    links already (EMLINK) gets one, and the next images are hard links again."""
    blob = tmp_path / "store" / "blob"
    blob.parent.mkdir()
    blob.write_bytes(b"the stored image")
    link = os.link
    refused = iter([True])

    def refusing_link(src: str, dest: str) -> None:
        if next(refused, False):
            raise OSError(refusal, os.strerror(refusal))
        link(src, dest)

    monkeypatch.setattr(os, "link", refusing_link)
    writer = ImageWriter(lambda h: str(blob), ImagesMode.LINK)
    first, second = tmp_path / "out" / "a.jpg", tmp_path / "out" / "b.jpg"
    writer.place("b", first)
    writer.place("b", second)
    assert first.is_symlink() and os.readlink(first) == str(blob)
    assert second.is_symlink() is not later_hard and second.read_bytes() == b"the stored image"

    def failing_link(src: str, dest: str) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "link", failing_link)  # any other error is an error
    with pytest.raises(OSError, match="I/O error"):
        ImageWriter(lambda h: str(blob), ImagesMode.LINK).place("b", tmp_path / "out" / "c.jpg")


def test_background_placement_error_is_raised_and_later_images_are_skipped(tmp_path: Path) -> None:
    src = tmp_path / "img.jpg"
    src.write_bytes(b"jpeg")
    paths = {"ok": str(src)}
    writer = ImageWriter(lambda h: paths[h], ImagesMode.COPY, background=True, threads=1)
    writer.place("ok", tmp_path / "out" / "1.jpg")
    writer.place("missing", tmp_path / "out" / "2.jpg")
    writer.place("ok", tmp_path / "out" / "3.jpg")
    with pytest.raises(KeyError, match="missing"):
        writer.finish()
    assert (tmp_path / "out" / "1.jpg").read_bytes() == b"jpeg"
    assert not (tmp_path / "out" / "3.jpg").exists()
    writer.finish()  # the error is reported once


@pytest.mark.parametrize("background", [False, True])
def test_file_writer_creates_folders_and_replaces_files(tmp_path: Path, background: bool) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "old.txt").write_bytes(b"old")
    with FileWriter(background=background) as files:
        for n in range(200):
            files.write(f"{tmp_path}/a/b{n % 3}/{n}.txt", f"{n}".encode())
        files.write(f"{tmp_path}/a/old.txt", b"")
    assert {p.relative_to(tmp_path).as_posix(): p.read_text() for p in tmp_path.rglob("*.txt")} == {
        f"a/b{n % 3}/{n}.txt": str(n) for n in range(200)} | {"a/old.txt": ""}


def test_file_writer_reports_a_failed_write(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where a folder should be")
    with pytest.raises(OSError), FileWriter(background=True) as files:
        files.write(f"{tmp_path}/ok.txt", b"1")
        files.write(f"{tmp_path}/taken/x.txt", b"2")


def test_background_writers_restore_the_switch_interval_when_the_last_one_ends(tmp_path: Path) -> None:
    """Background writers get the GIL back within 0.2 ms. They overlap (an export's images
    and label files, concurrent exports in the team server): the interval is short while
    any one writes, and what it was before comes back when the last one ends, also after
    an error."""
    import sys
    import threading

    src = tmp_path / "img.jpg"
    src.write_bytes(b"jpeg")
    before = sys.getswitchinterval()
    first = FileWriter(background=True)
    assert sys.getswitchinterval() == pytest.approx(0.0002)
    second = ImageWriter(lambda h: str(src), ImagesMode.COPY, background=True)
    second.place("h", tmp_path / "out" / "1.jpg")
    first.finish()  # the label files are done while the images are still being placed
    assert sys.getswitchinterval() == pytest.approx(0.0002)
    second.finish()
    assert sys.getswitchinterval() == before
    (tmp_path / "taken").write_text("a file where a folder should be")

    def export_that_fails(i: int) -> None:
        with contextlib.suppress(OSError), FileWriter(background=True) as files:
            files.write(f"{tmp_path}/taken/{i}.txt", b"disk full")

    threads = [threading.Thread(target=export_that_fails, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sys.getswitchinterval() == before


def test_failed_export_leaves_no_folder(stored: tuple[Workspace, dict[str, Any]], tmp_path: Path) -> None:
    ws, _ = stored
    blobs = sorted((ws.path / "objects" / "blobs").rglob("*"))
    victim = next(p for p in blobs if p.is_file())
    victim.unlink()  # an image missing from the store: the copy fails half-way
    with pytest.raises(StorageError, match="missing"):
        ws.dataset("d").export("yolo", tmp_path / "exports" / "out", images="copy")
    assert list((tmp_path / "exports").iterdir()) == []


def test_same_version_exports_identical_bytes_twice(stored: tuple[Workspace, dict[str, Any]],
                                                    tmp_path: Path) -> None:
    ws, _ = stored
    for fmt in ("yolo", "coco", "voc"):
        ws.dataset("d").export(fmt, tmp_path / f"{fmt}-1", images="copy")
        ws.dataset("d").export(fmt, tmp_path / f"{fmt}-2", images="copy")
        cmp = filecmp.dircmp(tmp_path / f"{fmt}-1", tmp_path / f"{fmt}-2")
        assert _tree(tmp_path / f"{fmt}-1") == _tree(tmp_path / f"{fmt}-2"), cmp.report()


def test_export_reports_progress_up_to_every_image(tmp_path: Path) -> None:
    """Long exports show progress: the count of placed images reaches the total."""
    import viewfinder as vf
    from viewfinder.services import export as export_service
    from viewfinder.synthetic import make_coco

    src = make_coco(tmp_path / "src", n_images=300, seed=3)
    ws = vf.init_workspace(tmp_path / "ws")
    ws.import_source(src, "street")
    seen: list[tuple[int, int]] = []
    result = export_service.export(ws._ws, "street", "yolo", tmp_path / "out", images="link",
                                   progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (result.samples, result.samples) == (300, 300)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
