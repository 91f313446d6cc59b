"""Importing model predictions: labels of a model run beside the ground truth."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from viewfinder.errors import ImportFailed, InvalidInput
from viewfinder.services import look
from viewfinder.services import versions as vs
from viewfinder.services.export import export
from viewfinder.services.ingest import import_source
from viewfinder.services.predictions import import_predictions
from viewfinder.storage.workspace import Workspace, init_workspace
from viewfinder.synthetic import make_coco


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    """The services' workspace (SQLite + local disk)."""
    w = init_workspace(tmp_path / "ws")
    yield w
    w.close()


@pytest.fixture
def street(ws: Workspace, tmp_path: Path) -> tuple[Workspace, Path, dict[str, Any]]:
    """A 6-image COCO dataset, imported; returns its annotation file's content."""
    src = make_coco(tmp_path / "src", n_images=6, seed=3, val_fraction=0.0)
    import_source(ws, src, "street")
    ann = src / "annotations" / "instances_train.json"
    return ws, ann, json.loads(ann.read_text())


def results_from(doc: dict[str, Any], score: float = 0.9) -> list[dict[str, Any]]:
    """A model that predicts every annotated box, slightly shifted."""
    return [{"image_id": a["image_id"], "category_id": a["category_id"],
             "bbox": [a["bbox"][0] + 1, a["bbox"][1], a["bbox"][2], a["bbox"][3]], "score": score}
            for a in doc["annotations"]]


def write(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj))
    return path


def labels_of(ws: Workspace, spec: str) -> list[dict[str, Any]]:
    with look.VersionReader(ws, vs.resolve(ws, spec)) as r:
        return r.query("SELECT * FROM labels ORDER BY id").to_pylist()


def test_coco_results_become_labels_of_the_model(street, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws, ann, doc = street
    before = vs.resolve(ws, "street")
    stats_before = look.stats(ws, "street")
    res = import_predictions(ws, "street", write(tmp_path / "r.json", results_from(doc)),
                             model="det-v1", annotations=ann)
    assert res.created and res.predictions == len(doc["annotations"])
    assert res.version.parents == [before.version.id]
    preds = [r for r in labels_of(ws, "street") if r["source"] == "model:det-v1"]
    assert len(preds) == len(doc["annotations"])
    assert {r["score"] for r in preds} == {0.9}
    # the version records the Run that made it
    run = ws.catalog.get_run(res.version.run_id)
    assert run is not None and (run["operation"], run["status"]) == ("import-predictions", "succeeded")
    # ground-truth statistics and per-class counts do not count predictions
    stats_after = look.stats(ws, "street")
    assert stats_after["labels"] == stats_before["labels"] == len(doc["annotations"])
    assert stats_after["classes"] == stats_before["classes"]
    assert stats_after["predictions"] == {"model:det-v1": len(doc["annotations"])}
    assert look.stats(ws, "street", 'split == "train"')["classes"] == stats_before["classes"]
    # an export is the ground truth only
    out = export(ws, "street", "coco", tmp_path / "out")
    assert out.labels == len(doc["annotations"])
    exported = json.loads((tmp_path / "out" / "annotations" / "instances_train.json").read_text())
    assert len(exported["annotations"]) == len(doc["annotations"])


def test_same_predictions_again_change_nothing_and_new_ones_replace(street, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws, ann, doc = street
    path = write(tmp_path / "r.json", results_from(doc))
    first = import_predictions(ws, "street", path, model="m", annotations=ann)
    again = import_predictions(ws, "street", path, model="m", annotations=ann)
    assert not again.created and again.version.id == first.version.id
    fewer = write(tmp_path / "r2.json", results_from(doc, score=0.5)[:2])
    res = import_predictions(ws, "street", fewer, model="m", annotations=ann)
    assert res.changes["labels"]["removed"] == len(doc["annotations"]) - 2
    preds = [r for r in labels_of(ws, "street") if r["source"] == "model:m"]
    assert len(preds) == 2 and {r["score"] for r in preds} == {0.5}


def test_reimporting_the_ground_truth_keeps_predictions(street, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws, ann, doc = street
    import_predictions(ws, "street", write(tmp_path / "r.json", results_from(doc)), model="m", annotations=ann)
    doc["annotations"][0]["category_id"] = doc["annotations"][0]["category_id"] % 4 + 1
    ann.write_text(json.dumps(doc))
    import_source(ws, ann.parent.parent, "street")
    labels = labels_of(ws, "street")
    assert sum(r["source"] == "model:m" for r in labels) == len(doc["annotations"])
    assert sum(r["source"] == "ground_truth" for r in labels) == len(doc["annotations"])


@pytest.mark.parametrize("record, message", [
    ({"image_id": 999, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.5}, "unknown image_id 999"),
    ({"image_id": 1, "category_id": 77, "bbox": [1, 1, 5, 5], "score": 0.5}, "unknown category_id 77"),
    ({"image_id": 1, "category_id": 1, "bbox": [1, 1, -5, 5], "score": 0.5}, "bbox has no area"),
    ({"image_id": 1, "category_id": 1, "bbox": [1, 1, 5], "score": 0.5}, "bbox must be four finite numbers"),
    ({"image_id": 1, "category_id": 1, "bbox": [900, 900, 5, 5], "score": 0.5}, "lies outside"),
    ({"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 1.5}, "score 1.5 is outside [0, 1]"),
])
def test_a_bad_record_is_named_and_no_version_is_made(street, tmp_path: Path, record: dict[str, Any],
                                                      message: str) -> None:  # type: ignore[no-untyped-def]
    ws, ann, doc = street
    head = vs.resolve(ws, "street").version.id
    path = write(tmp_path / "bad.json", [*results_from(doc), record])
    with pytest.raises(ImportFailed) as e:
        import_predictions(ws, "street", path, model="m", annotations=ann)
    problem = e.value.problems[0]
    assert len(e.value.problems) == 1
    assert message in problem.message and problem.path == str(path)
    assert f"detection #{len(doc['annotations'])}" in (problem.record or "")
    assert vs.resolve(ws, "street").version.id == head
    # skip: the good records are imported, the bad one is reported
    res = import_predictions(ws, "street", path, model="m", annotations=ann, on_error="skip")
    assert res.created and res.predictions == len(doc["annotations"]) and len(res.skipped) == 1


def test_coco_results_need_the_annotation_file_for_integer_ids(street, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws, _ann, doc = street
    with pytest.raises(ImportFailed, match="needs the COCO annotation file"):
        import_predictions(ws, "street", write(tmp_path / "r.json", results_from(doc)), model="m")
    # without it, records may name the image by key and the class by name
    a = doc["annotations"][0]
    named = [{"file_name": "000000.jpg", "category_name": "car", "bbox": a["bbox"], "score": 0.7}]
    res = import_predictions(ws, "street", write(tmp_path / "n.json", named), model="m")
    assert res.predictions == 1
    with pytest.raises(InvalidInput, match="JSON list"):
        import_predictions(ws, "street", write(tmp_path / "o.json", {"x": 1}), model="m")
    with pytest.raises(InvalidInput, match="invalid model name"):
        import_predictions(ws, "street", tmp_path / "n.json", model="bad name")


def _imagefolder(root: Path) -> Path:
    for cls, colour in (("cat", (200, 50, 50)), ("dog", (50, 50, 200))):
        for i in range(3):
            (root / cls).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 12), tuple(c + 10 * i for c in colour)).save(root / cls / f"{i}.png")
    return root


def test_classification_csv_with_probabilities(ws: Workspace, tmp_path: Path) -> None:
    import_source(ws, _imagefolder(tmp_path / "pets"), "pets", format="imagefolder")
    path = tmp_path / "p.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["key", "cat", "dog"])
        for i in range(3):
            w.writerow([f"cat/{i}.png", 0.8, 0.2])
            w.writerow([f"dog/{i}.png", 0.3, 0.7])
    res = import_predictions(ws, "pets", path, model="clf", format="classification-csv")
    assert res.predictions == 6
    preds = {r["sample_id"]: r for r in labels_of(ws, "pets") if r["source"] == "model:clf"}
    dog0 = preds[next(iter(s["id"] for s in look.samples_page(ws, "pets", 'label.class == "dog"')))]
    assert dog0["class_name"] == "dog" and dog0["score"] == pytest.approx(0.7)
    assert json.loads(dog0["attributes"])["probs"] == {"cat": 0.3, "dog": 0.7}
    assert look.stats(ws, "pets")["classes"] == {"cat": 3, "dog": 3}

    bad = tmp_path / "bad.csv"
    bad.write_text("key,cat,dog\ncat/0.png,0.8,0.8\nnowhere.png,0.5,0.5\n")
    with pytest.raises(ImportFailed) as e:
        import_predictions(ws, "pets", bad, model="clf2", format="classification-csv")
    assert [(p.record, p.message.split(":")[0]) for p in e.value.problems] == [
        ("line 2", "probabilities add up to 1.6, not 1"), ("line 3", "unknown image 'nowhere.png'")]
    bad.write_text("key,cat,horse\ncat/0.png,0.5,0.5\n")
    with pytest.raises(InvalidInput, match="unknown class column.*horse"):
        import_predictions(ws, "pets", bad, model="clf2", format="classification-csv")
    top1 = tmp_path / "top1.csv"
    top1.write_text("file_name,class,score\n0.png,cat,0.9\ncat/1.png,horse,0.9\n")
    with pytest.raises(ImportFailed) as e:
        import_predictions(ws, "pets", top1, model="clf2", format="classification-csv")
    assert [p.message for p in e.value.problems] == [
        "image '0.png' matches several samples", "unknown class 'horse': not a class of the dataset"]


def test_cli_import_predictions(street, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from viewfinder.cli.main import app

    ws, ann, doc = street
    monkeypatch.setenv("VIEWFINDER_WORKSPACE", str(ws.path))
    runner = CliRunner()
    path = write(tmp_path / "r.json", results_from(doc))
    r = runner.invoke(app, ["import-predictions", "street@main", str(path), "--model", "det",
                            "--coco", str(ann), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["predictions"] == len(doc["annotations"])
    r = runner.invoke(app, ["import-predictions", "street", str(path), "--model", "det", "--coco", str(ann)])
    assert r.exit_code == 0 and "nothing to change" in r.stdout
    bad = write(tmp_path / "bad.json", [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 2}])
    r = runner.invoke(app, ["import-predictions", "street", str(bad), "--model", "det2", "--coco", str(ann)])
    assert r.exit_code == 1 and "score 2 is outside [0, 1]" in r.output and "bad.json" in r.output


def test_every_summary_equals_a_full_recount_with_and_without_predictions(street, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A commit whose labels are all ground truth skips the ``source`` column when it counts
    them; once a model's predictions are in, the counts keep them apart. Either way the
    stored summary is what a full scan of the version gives."""
    ws, ann, doc = street

    def assert_stored_summary_is_a_recount() -> dict[str, Any]:
        at = vs.resolve(ws, "street")
        fresh = vs.summarize(ws.tables(at.dataset), at.version.samples_table_version,
                             at.version.labels_table_version)
        assert {k: at.version.summary[k] for k in fresh} == fresh
        return fresh

    doc["annotations"][0]["category_id"] = doc["annotations"][0]["category_id"] % 4 + 1
    ann.write_text(json.dumps(doc))
    import_source(ws, ann.parent.parent, "street")                    # ground truth only
    assert "predictions" not in assert_stored_summary_is_a_recount()
    import_predictions(ws, "street", write(tmp_path / "r.json", results_from(doc)), model="m", annotations=ann)
    n = len(doc["annotations"])
    assert assert_stored_summary_is_a_recount()["predictions"] == {"model:m": n}
    doc["annotations"][1]["category_id"] = doc["annotations"][1]["category_id"] % 4 + 1
    ann.write_text(json.dumps(doc))
    import_source(ws, ann.parent.parent, "street")                    # ground truth, predictions kept
    fresh = assert_stored_summary_is_a_recount()
    assert fresh["predictions"] == {"model:m": n} and fresh["labels"] == n
