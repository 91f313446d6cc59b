"""Importing: what a data engineer sees when they bring a dataset in, good or bad."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from viewfinder import ImportFailed, InvalidInput
from viewfinder.api import Workspace
from viewfinder.storage.blobs import blob_relpath
from viewfinder.synthetic import make_coco


def _coco(src: Path, split: str = "train") -> dict:
    return json.loads((src / "annotations" / f"instances_{split}.json").read_text())


def _write(src: Path, doc: dict, split: str = "train") -> None:
    (src / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))


def test_import_counts_and_stats(ws: Workspace, coco_source: Path) -> None:
    res = ws.import_source(coco_source, "street", format="coco")
    n_ann = sum(len(_coco(coco_source, s)["annotations"])
                for s in ("train", "val") if (coco_source / f"annotations/instances_{s}.json").exists())
    assert res.created and res.samples == 12 and res.labels == n_ann
    stats = ws.dataset("street").stats()
    assert stats["samples"] == 12 and stats["labels"] == n_ann
    assert sum(stats["classes"].values()) == n_ann
    assert set(stats["splits"]) <= {"train", "val"} and sum(stats["splits"].values()) == 12
    assert sum(stats["box_sizes"]["buckets"].values()) == n_ann


def test_import_auto_detects_coco(ws: Workspace, coco_source: Path) -> None:
    assert ws.import_source(coco_source, "street").format == "coco"


def test_reimport_is_idempotent(ws: Workspace, coco_source: Path) -> None:
    first = ws.import_source(coco_source, "street")
    again = ws.import_source(coco_source, "street")
    assert not again.created and again.version.id == first.version.id
    assert len(ws.log("street")) == 2  # "create dataset" + the import


def test_images_are_stored_once_by_content_hash(ws: Workspace, tmp_path: Path) -> None:
    src = make_coco(tmp_path / "src", n_images=3, seed=1, val_fraction=0)
    a, b = sorted((src / "images" / "train").iterdir())[:2]
    shutil.copyfile(a, b)  # two samples, one image
    ws.import_source(src, "dup", format="coco", on_error="skip")
    rows = ws.dataset("dup").samples().to_pylist()
    assert len(rows) == 3
    hashes = [r["content_hash"] for r in rows]
    assert len(set(hashes)) == 2
    for h in hashes:
        assert (ws.path / "objects" / blob_relpath(h)).exists()


def test_sync_shows_exactly_the_labels_a_vendor_changed(ws: Workspace, coco_source: Path) -> None:
    ws.import_source(coco_source, "street")
    ws.tag("street@main", "before")
    doc = _coco(coco_source)
    anns = doc["annotations"]
    anns[0]["category_id"] = anns[0]["category_id"] % 4 + 1          # class corrected
    anns[1]["bbox"][0] += 2                                          # box moved
    removed = anns.pop(2)                                            # spurious box removed
    anns.append({**anns[3], "id": 10_000})                           # missing box added
    _write(coco_source, doc)
    res = ws.import_source(coco_source, "street", mode="sync")
    d = ws.diff("street", "before", "main")
    assert d.labels.counts() == {"added": 1, "removed": 1, "changed": 2}
    assert d.samples.counts()["removed"] == 0
    assert res.changes["labels"] == {"added": 1, "removed": 1, "changed": 2}
    assert removed["id"] not in [int(x) for x in
                                 ws.dataset("street").labels().column("source_id").to_pylist()]


def test_sync_removes_samples_gone_from_source_and_add_does_not(ws: Workspace, coco_source: Path) -> None:
    ws.import_source(coco_source, "street")
    doc = _coco(coco_source)
    gone = doc["images"].pop(0)
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] != gone["id"]]
    _write(coco_source, doc)
    ws.import_source(coco_source, "street", mode="add")
    assert len(ws.dataset("street")) == 12
    ws.import_source(coco_source, "street", mode="sync")
    assert len(ws.dataset("street")) == 11
    assert ws.dataset("street").count(f'key == "train/{gone["file_name"]}"') == 0


def test_exif_orientation_is_honoured(ws: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "folder" / "cat"
    root.mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°: stored 100x50, displayed 50x100
    Image.new("RGB", (100, 50), "red").save(root / "a.jpg", exif=exif.tobytes())
    ws.import_source(tmp_path / "folder", "rot", format="imagefolder")
    row = ws.dataset("rot").samples().to_pylist()[0]
    assert (row["width"], row["height"]) == (50, 100)


def test_camera_exif_is_kept_and_queryable_and_survives_reimport(ws: Workspace, tmp_path: Path) -> None:
    """A curator filters by camera and capture date; an unchanged re-import (served from
    the file cache) keeps the same fields, so it creates no version."""
    root = tmp_path / "folder" / "cat"
    root.mkdir(parents=True)
    for i, model in enumerate(["EOS 5D", "EOS R6", None]):
        exif = Image.Exif()
        if model:
            exif[0x010F], exif[0x0110] = "Canon", model
            exif.get_ifd(0x8769)[0x9003] = f"2024:05:0{i + 1} 08:00:00"
        Image.new("RGB", (20, 10), (i * 60, 0, 0)).save(root / f"{i}.jpg", exif=exif.tobytes())
    ws.import_source(tmp_path / "folder", "cams", format="imagefolder")
    ds = ws.dataset("cams")
    assert ds.count('metadata.exif.make == "Canon"') == 2
    assert ds.count('metadata.exif.model == "EOS R6"') == 1
    assert ds.count('metadata.exif.datetime_original >= "2024-05-02"') == 1
    assert not ws.import_source(tmp_path / "folder", "cams", format="imagefolder").created
    assert ws.dataset("cams").count('metadata.exif.make == "Canon"') == 2


def test_user_metadata_file_is_kept_and_queryable(ws: Workspace, coco_source: Path, tmp_path: Path) -> None:
    names = sorted(p.name for p in (coco_source / "images" / "train").iterdir())
    meta = tmp_path / "meta.csv"
    meta.write_text("file,region,night\n" + "\n".join(
        f"{n},{'APAC' if i % 2 else 'EU'},{str(i % 3 == 0).lower()}" for i, n in enumerate(names)))
    ws.import_source(coco_source, "street", metadata=meta)
    ds = ws.dataset("street")
    assert ds.count('metadata.region == "APAC"') == len(names) // 2
    assert ds.count("metadata.night == true") == len(range(0, len(names), 3))


@pytest.fixture
def broken_source(coco_source: Path) -> tuple[Path, list[str]]:
    """The COCO source with one problem of every kind an image can have; returns it and
    the names of the broken images (non-image, truncated, missing, box outside)."""
    imgs = sorted((coco_source / "images" / "train").iterdir())
    names = [p.name for p in imgs[:4]]
    imgs[0].write_bytes(b"this is not an image")                        # non-image
    data = imgs[1].read_bytes()
    imgs[1].write_bytes(data[: len(data) // 2])                           # truncated JPEG
    imgs[2].unlink()                                                      # missing file
    doc = _coco(coco_source)
    by_name = {im["file_name"]: im["id"] for im in doc["images"]}
    victim = by_name[imgs[3].name]
    for a in doc["annotations"]:
        if a["image_id"] == victim:
            a["bbox"] = [150.0, 100.0, 40.0, 40.0]                       # outside 160x120
            break
    _write(coco_source, doc)
    return coco_source, names


def test_bad_input_fails_with_every_problem_and_no_version(ws: Workspace, broken_source) -> None:
    src, names = broken_source
    with pytest.raises(ImportFailed) as e:
        ws.import_source(src, "street")
    by_kind = {
        "non-image": [p for p in e.value.problems if names[0] in str(p) and "not a readable image" in p.message],
        "truncated": [p for p in e.value.problems if names[1] in str(p) and "truncated" in p.message],
        "missing": [p for p in e.value.problems if names[2] in str(p) and "not found" in p.message],
        "outside": [p for p in e.value.problems if "outside" in p.message and p.record],
    }
    assert all(by_kind.values()), by_kind
    assert "street" not in ws.datasets() or len(ws.log("street")) == 1  # no imported version


def test_on_error_skip_imports_the_rest_and_records_what_was_skipped(ws: Workspace, broken_source) -> None:
    src, names = broken_source
    res = ws.import_source(src, "street", on_error="skip")
    assert res.created and len(res.skipped) == 4
    v = ws.dataset("street").version
    assert [p["message"] for p in v.extra["skipped"]] == [p.message for p in res.skipped]
    assert {"path", "record", "message"} <= set(v.extra["skipped"][0])
    # the three broken images are left out; the bad box is left out of its sample
    keys = set(ws.dataset("street").samples().column("key").to_pylist())
    assert not {f"train/{n}" for n in names[:3]} & keys and f"train/{names[3]}" in keys
    assert len(keys) == 12 - 3


def test_decompression_bomb_is_refused(ws: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "bomb" / "x"
    root.mkdir(parents=True)
    Image.new("1", (14_000, 14_000)).save(root / "big.png")  # 196 Mpx, a few KB on disk
    Image.new("RGB", (10, 10)).save(root / "ok.png")
    with pytest.raises(ImportFailed) as e:
        ws.import_source(tmp_path / "bomb", "bomb", format="imagefolder")
    assert any("decompression bomb" in p.message and "big.png" in p.path for p in e.value.problems)


def test_source_must_be_a_folder(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        ws.import_source(tmp_path / "nope", "x")


def test_parallel_import_matches_serial(ws: Workspace, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers get the images of the whole source at once, or file by file as the COCO
    reader finds them (here: the train file's, then the val file's): same rows."""
    from viewfinder.services import ingest

    src = make_coco(tmp_path / "big", n_images=600, size=(64, 48), seed=5)
    a = ws.import_source(src, "par", workers=2)
    b = ws.import_source(src, "ser", workers=1)
    monkeypatch.setattr(ingest._Scan, "POOL_MIN", 100)
    c = ws.import_source(src, "early", workers=2, rehash=True)
    rows = {name: ws.dataset(name).samples().select(["key", "content_hash", "width"]).to_pylist()
            for name in ("par", "ser", "early")}
    assert a.samples == b.samples == c.samples == 600
    assert rows["par"] == rows["ser"] == rows["early"]
    assert ws.dataset("early").labels().num_rows == ws.dataset("ser").labels().num_rows


def test_hostile_numbers_and_names_are_problems_not_crashes(ws: Workspace, coco_source: Path) -> None:
    doc = _coco(coco_source)
    doc["annotations"][0]["bbox"] = [10**400, 0, 5, 5]       # overflows a float
    doc["images"][1]["file_name"] = "x" * 5000 + ".jpg"      # longer than any file system allows
    _write(coco_source, doc)
    with pytest.raises(ImportFailed) as e:
        ws.import_source(coco_source, "street")
    assert e.value.problems and all(p.path for p in e.value.problems)


def _race_after_planning(ws: Workspace, dataset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next import plans its labels, then another writer commits (tags every sample
    "raced") before the import takes the lock."""
    from viewfinder.services import ingest

    real = ingest._plan_labels

    def plan_then_race(*args, **kwargs):  # type: ignore[no-untyped-def]
        plan = real(*args, **kwargs)
        ws.dataset(dataset).tag_samples(None, add=["raced"])
        return plan

    monkeypatch.setattr(ingest, "_plan_labels", plan_then_race)


def test_import_racing_another_writer_rebuilds_on_the_new_head(
        ws: Workspace, coco_source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Label rows are planned while images are read, before the lock; if another commit
    lands meanwhile, the import builds on that head and keeps its change."""

    ws.import_source(coco_source, "street")
    doc = _coco(coco_source)
    doc["annotations"][0]["category_id"] = doc["annotations"][0]["category_id"] % 4 + 1
    _write(coco_source, doc)
    _race_after_planning(ws, "street", monkeypatch)
    res = ws.import_source(coco_source, "street", mode="sync")
    assert res.changes["labels"] == {"added": 0, "removed": 0, "changed": 1}
    ds = ws.dataset("street")
    assert ds.count('"raced" in tags') == 12
    assert res.version.parents == [ws.log("street")[1].id]  # built on the racing commit


def test_reimport_reads_only_files_that_changed(ws: Workspace, coco_source: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from viewfinder.services import images, ingest

    ws.import_source(coco_source, "street", workers=1)
    read: list[str] = []
    real = images.process_chunk

    def counting(items, *a):  # type: ignore[no-untyped-def]
        read.extend(k for k, _ in items)
        return real(items, *a)

    monkeypatch.setattr(ingest, "process_chunk", counting)
    assert not ws.import_source(coco_source, "street", workers=1).created
    assert read == []                                        # nothing read again
    victim = sorted((coco_source / "images" / "train").iterdir())[0]
    Image.new("RGB", (160, 120), "blue").save(victim)        # same name, new pixels
    res = ws.import_source(coco_source, "street", workers=1)
    assert read == [f"train/{victim.name}"] and res.changes["samples"]["changed"] == 1
    # an in-place edit that restores the old times is only seen with rehash
    st = victim.stat()
    with open(victim, "r+b") as f:
        f.seek(st.st_size - 10)
        f.write(b"\x00" * 8)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert not ws.import_source(coco_source, "street", workers=1).created
    assert ws.import_source(coco_source, "street", workers=1, rehash=True).changes["samples"]["changed"] == 1


def test_race_with_labels_matched_by_geometry(ws: Workspace, coco_source: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """YOLO labels have no ids: a re-import matches them to the head's by geometry. When a
    commit races the import, the labels are planned again from the plan's rows, with the
    same matches: a changed class is one changed label, not one removed and one added."""

    ws.import_source(coco_source, "street")
    ws.dataset("street").export("yolo", tmp_path / "y", images="copy")
    ws.import_source(tmp_path / "y", "y", format="yolo")
    label_file = min((tmp_path / "y" / "labels").rglob("*.txt"))
    lines = label_file.read_text().splitlines()
    cls, rest = lines[0].split(" ", 1)
    lines[0] = f"{(int(cls) + 1) % 4} {rest}"
    label_file.write_text("\n".join(lines) + "\n")
    _race_after_planning(ws, "y", monkeypatch)
    res = ws.import_source(tmp_path / "y", "y", format="yolo", mode="sync")
    assert res.changes["labels"] == {"added": 0, "removed": 0, "changed": 1}
    assert res.version.parents == [ws.log("y")[1].id]
    assert ws.dataset("y").count('"raced" in tags') == ws.dataset("y").count()


def _voc_xml(filename: str, boxes: list[tuple[int, int, int, int]], size: tuple[int, int] | None) -> str:
    objects = "".join(f"<object><name>dog</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin>"
                      f"<xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>" for a, b, c, d in boxes)
    size_el = f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>" if size else ""
    return f"<annotation><filename>{filename}</filename>{size_el}{objects}</annotation>"


def test_labels_are_checked_against_the_real_image_size(ws: Workspace, tmp_path: Path) -> None:
    """Where the annotations do not give the image size (VOC without <size>) or give a wrong
    one, the import checks the labels against the image itself: every problem names the
    image and the label (by its place: VOC has no label ids), in sample order."""
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for name in ("a", "b", "c"):
        Image.new("RGB", (40, 30)).save(root / "JPEGImages" / f"{name}.jpg")
    docs = {"a": _voc_xml("a.jpg", [(1, 1, 10, 10), (20, 5, 60, 20)], None),  # 2nd: 20 px too wide
            "b": _voc_xml("b.jpg", [(50, 1, 60, 10)], (80, 60)),              # the file's size is wrong
            "c": _voc_xml("c.jpg", [(1, 1, 40, 30)], None)}                   # the whole image: fine
    for name, doc in docs.items():
        (root / "Annotations" / f"{name}.xml").write_text(doc)

    with pytest.raises(ImportFailed) as e:
        ws.import_source(root, "pets", format="voc")
    assert [(p.path, p.record, p.message) for p in e.value.problems] == [
        ("a.jpg", "label 1", "box [19, 4, 41, 16] lies outside the 40x30 image"),
        ("b.jpg", None, "annotation says 80x60 but the image is 40x30"),
        ("b.jpg", "label 0", "box [49, 0, 11, 10] lies outside the 40x30 image"),
    ]
    assert "pets" not in ws.datasets() or len(ws.log("pets")) == 1

    res = ws.import_source(root, "pets", format="voc", on_error="skip")
    assert (res.samples, res.labels, len(res.skipped)) == (1, 1, 3)
    assert ws.dataset("pets").samples().column("key").to_pylist() == ["c.jpg"]
    assert ws.dataset("pets").stats()["classes"] == {"dog": 1}


def test_every_kind_of_bad_label_row_is_named_once_in_row_order() -> None:
    """The import's last check of label rows against the real image sizes (readers catch
    most of these first; labels from the API or a lenient format reach only this one)."""
    from viewfinder.core.types import LabelKind, SourceLabel
    from viewfinder.services.ingest import _label_problems
    from viewfinder.storage import rows

    nan = float("nan")
    a, b, gone = (rows.sample_id(k) for k in ("a.jpg", "b.jpg", "gone.jpg"))
    batch = rows.LabelColumns()
    for sid, label in [
        (a, SourceLabel(LabelKind.BOX, "car", (1.0, 1.0, 5.0, 5.0))),         # fine
        (a, SourceLabel(LabelKind.BOX, "car", (1.0, nan, 5.0, 5.0))),         # label 1
        (a, SourceLabel(LabelKind.BOX, "car", (1.0, 1.0, -2.0, 5.0))),        # label 2
        (a, SourceLabel(LabelKind.BOX, "", (30.0, 1.0, 20.0, 5.0))),          # label 3: twice
        (a, SourceLabel(LabelKind.CLASSIFICATION, "")),                        # label 4
        (b, SourceLabel(LabelKind.BOX, "car", (-1.0, nan, -3.0, 5.0), source_id="7")),
        (b, SourceLabel(LabelKind.CLASSIFICATION, "dog", source_id="8")),      # fine
        (gone, SourceLabel(LabelKind.BOX, "", (-1.0, 1.0, -3.0, 5.0))),       # its image is unreadable
    ]:
        batch.add(label, label_id=rows.short_hash(sid, str(len(batch))), sample_id_=sid)
    problems = _label_problems(batch.table(), {a: (40, 30), b: (40, 30)})
    assert dict(problems) == {
        a: [("label 1", "box has non-finite coordinates"),
            ("label 2", "box has negative size (-2x5)"),
            ("label 3", "box [30, 1, 20, 5] lies outside the 40x30 image"),
            ("label 3", "label has no class"),
            ("label 4", "label has no class")],
        b: [("label 7", "box has non-finite coordinates")],
    }
