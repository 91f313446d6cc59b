"""A curator's journey: import a dataset with planted problems, see every check fail on
exactly the planted samples and labels, fix them in new versions, see the checks pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.quality.planted import (
    CUSTOM_SUITE,
    HOSTILE,
    PLANTED,
    label_id,
    sample_id,
    write_source,
)
from viewfinder.quality.report import CheckReport
from viewfinder.quality.suite import CheckSpec, Suite, parse_suite
from viewfinder.services import checks as svc
from viewfinder.services import edit, ingest
from viewfinder.storage.workspace import Workspace, init_workspace


def fix(ws: Workspace, tmp_path: Path) -> None:
    """The vendor's corrected delivery (sync), then the curator folds the rare classes."""
    src = write_source(tmp_path / "fixed", fixed=True)
    ingest.import_source(ws, src, "street", mode="sync", metadata=src / "meta.json",
                         message="vendor corrections")
    edit.remap(ws, "street", {"dog": "car", HOSTILE: "person"})


def by_name(report: CheckReport) -> dict[str, object]:
    return {o.name: o for o in report.outcomes}


def test_default_suite_fails_on_the_planted_problems(planted: Workspace) -> None:
    report = svc.run_checks(planted, "street", pixels=False)
    out = by_name(report)
    assert not report.passed
    geo = out["geometry is valid"]
    assert geo.status == "failed" and geo.blocking
    assert set(geo.result.label_ids) == {label_id(planted, "street", *PLANTED["outside"]),
                                         label_id(planted, "street", *PLANTED["tiny"])}
    assert geo.result.details["problems"] == {"outside the image": 1, "smaller than min_size": 1}
    comp = out["samples are labeled and split"]
    assert comp.status == "failed" and comp.result.sample_ids == [sample_id(PLANTED["no_split"])]
    leak = out["no image shared across splits"]
    assert leak.status == "failed"
    assert set(leak.result.sample_ids) == {sample_id(PLANTED["dup_train"]), sample_id(PLANTED["dup_val"])}
    bal = out["classes are balanced"]
    assert bal.status == "failed" and not bal.blocking           # a warning: shown, not blocking
    assert bal.result.details["rare_classes"] == sorted([HOSTILE, "dog"])
    assert bal.result.value == 25.0
    # what needs pixels is skipped, and says so
    assert out["few label errors"].status == "skipped"
    assert out["images are usable"].params["decode"] is False
    # the report is stored with a Run
    stored = svc.latest_report(planted, "street", report.version)
    assert stored is not None and stored.id == report.id and not stored.passed
    run = planted.catalog.get_run(stored.to_dict()["id"] and _run_of(planted, report.id))
    assert run is not None and run["operation"] == "check" and run["status"] == "succeeded"


def _run_of(ws: Workspace, report_id: str) -> str:
    import sqlalchemy as sa

    from viewfinder.storage.catalog import check_reports

    with ws.catalog.engine.connect() as c:
        return c.execute(sa.select(check_reports.c.run_id).where(check_reports.c.id == report_id)).scalar_one()


def test_custom_suite_names_every_planted_problem(planted: Workspace) -> None:
    report = svc.run_checks(planted, "street", parse_suite(CUSTOM_SUITE), pixels=False)
    out = by_name(report)
    schema = out["labels follow the schema"].result
    assert set(schema.label_ids) == {label_id(planted, "street", *PLANTED["hostile"]),
                                     label_id(planted, "street", *PLANTED["dog"])}
    assert schema.details["unknown_classes"] == {HOSTILE: 1, "dog": 1}
    assert out["region recorded"].result.sample_ids == [sample_id(PLANTED["no_region"])]
    assert out["region recorded"].result.details["problems"] == {"region missing": 1}
    assert out["everything labeled and split"].result.sample_ids == [sample_id(PLANTED["no_split"])]
    assert out["classes balanced"].status == "failed"
    # scoped to val: only val images were looked at (6 + the duplicate), all large enough
    assert out["validation images only"].status == "passed"
    assert report.counts == {"passed": 1, "failed": 6, "skipped": 0, "error": 0, "blocking": 6}


def test_fixed_version_passes_both_suites(planted: Workspace, tmp_path: Path) -> None:
    broken = svc.run_checks(planted, "street", parse_suite(CUSTOM_SUITE), pixels=False)
    fix(planted, tmp_path)
    custom = svc.run_checks(planted, "street", parse_suite(CUSTOM_SUITE), pixels=False)
    assert custom.passed, [(o.name, o.message) for o in custom.outcomes if o.status != "passed"]
    assert custom.version != broken.version
    default = svc.run_checks(planted, "street", pixels=False)
    assert default.passed, [(o.name, o.message) for o in default.outcomes if o.blocking]
    assert all(o.status in ("passed", "skipped") for o in default.outcomes)
    # the old version keeps its failing report
    old = svc.latest_report(planted, "street", broken.version)
    assert old is not None and not old.passed


def test_scope_filter_limits_a_check_to_matching_samples(planted: Workspace) -> None:
    suite = Suite(name="scoped", checks=[
        CheckSpec(name="val geometry", check="geometry", filter='split == "val"'),
        CheckSpec(name="train geometry", check="geometry", filter='split == "train"')])
    out = by_name(svc.run_checks(planted, "street", suite, pixels=False))
    assert out["val geometry"].status == "passed"           # planted boxes are in train
    assert out["train geometry"].result.label_count == 2


def test_thresholds_and_drift_against_itself(planted: Workspace) -> None:
    suite = Suite(name="t", checks=[
        CheckSpec(name="lenient", check="geometry", params={"min_size": 0.5, "tolerance": 1.0}),
        CheckSpec(name="imbalance allowed", check="class_balance",
                  params={"min_count": 1, "max_ratio": 30}),
        CheckSpec(name="drift vs itself", check="drift", params={"reference": "main"}),
        CheckSpec(name="chi2 vs itself", check="drift", params={"reference": "main", "statistic": "chi2"})])
    out = by_name(svc.run_checks(planted, "street", suite, pixels=False))
    assert out["lenient"].status == "passed"
    assert out["imbalance allowed"].status == "passed"
    assert out["drift vs itself"].result.value == 0.0
    assert out["chi2 vs itself"].result.value == pytest.approx(1.0)


def test_drift_against_a_release_flags_a_shifted_class_mix(planted: Workspace, tmp_path: Path) -> None:
    from viewfinder.services import versions as vs

    vs.tag(planted, "street", "before")
    edit.remap(planted, "street", {"person": "car"})   # every person becomes a car
    suite = Suite(name="d", checks=[CheckSpec(name="drift", check="drift", params={"reference": "before"})])
    out = by_name(svc.run_checks(planted, "street", suite, pixels=False))["drift"]
    assert out.status == "failed" and out.result.value > 0.2
    assert out.result.details["reference"] == "before"
    assert out.result.details["image_size_stats"]["current"]["mean_width"] == 64.0
    assert {c.title.split(":")[0] for c in out.result.charts} == {"class proportions", "image sizes"}


def test_metadata_rules_types_values_and_ranges(tmp_path: Path) -> None:
    import json

    ws = init_workspace(tmp_path / "ws")
    src = write_source(tmp_path / "src", fixed=True)
    meta = json.loads((src / "meta.json").read_text())
    names = sorted(meta)
    meta[names[0]]["exposure"] = 500          # out of range
    meta[names[1]]["exposure"] = "bright"     # wrong type
    meta[names[2]].update(region="MARS", exposure=10)   # not an allowed value
    for n in names[3:]:
        meta[n]["exposure"] = 10
    (src / "meta.json").write_text(json.dumps(meta))
    ingest.import_source(ws, src, "m", metadata=src / "meta.json")
    suite = Suite(name="m", checks=[CheckSpec(name="meta", check="metadata", params={"fields": {
        "region": {"values": ["EU", "APAC"]}, "exposure": {"type": "float", "min": 1, "max": 100}}})])
    r = svc.run_checks(ws, "m", suite, pixels=False).outcomes[0].result
    assert r.details["problems"] == {"region not an allowed value": 1, "exposure not float": 1,
                                     "exposure above 100": 1}
    keyed = {sample_id(f"train/{n}") for n in names[:3]} | {sample_id(f"val/{n}") for n in names[:3]}
    assert set(r.sample_ids) <= keyed and r.sample_count == 3
    ws.close()


def test_checks_that_need_detectors_run_with_pixels(planted: Workspace) -> None:
    """Image decoding (image_problems) and near duplicates across splits read pixels."""
    suite = Suite(name="px", checks=[
        CheckSpec(name="images decode", check="image_integrity", params={"modes": ["RGB"]}),
        CheckSpec(name="leakage", check="split_hygiene", params={"near_duplicates": True})])
    out = by_name(svc.run_checks(planted, "street", suite, pixels=True))
    assert out["images decode"].status == "passed", out["images decode"].message
    assert "decode" in out["images decode"].result.details["checked"]
    leak = out["leakage"]
    assert leak.status == "failed", leak.message
    assert {sample_id(PLANTED["dup_train"]), sample_id(PLANTED["dup_val"])} <= set(leak.result.sample_ids)


def test_label_error_rate_from_the_classification_detector(tmp_path: Path) -> None:
    """Two colour classes, three images filed under the wrong class: the estimated
    label-error rate is above 2% and the flagged labels are misfiled ones."""
    import random

    from PIL import Image

    rng = random.Random(3)
    wrong = set()
    for cls, base in (("red", (200, 40, 40)), ("blue", (40, 40, 200))):
        for i in range(20):
            misfiled = cls == "red" and i < 3
            colour = (40, 40, 200) if misfiled else base
            path = tmp_path / "src" / "train" / cls / f"{cls}{i:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (24, 24), tuple(max(0, min(255, c + rng.randint(-25, 25))) for c in colour)).save(path)
            if misfiled:
                wrong.add(f"train/{cls}/{cls}{i:02d}.png")
    ws = init_workspace(tmp_path / "ws")
    ingest.import_source(ws, tmp_path / "src", "colours", format="imagefolder")
    suite = Suite(name="le", checks=[CheckSpec(name="few label errors", check="label_errors",
                                               params={"max_rate": 0.02,
                                                       "detector_params": {"features": "pixels"}})])
    skipped = svc.run_checks(ws, "colours", suite, pixels=False).outcomes[0]
    assert skipped.status == "skipped"
    out = svc.run_checks(ws, "colours", suite, pixels=True).outcomes[0]
    assert out.status == "failed", out.message
    assert set(out.result.sample_ids) <= {sample_id(k) for k in wrong}
    assert out.result.sample_count >= 2 and out.result.label_count == out.result.sample_count
    assert out.result.value == out.result.label_count / 40 and out.result.details["labels"] == 40
    ws.close()


def test_duplicate_boxes_match_a_brute_force_count(tmp_path: Path) -> None:
    """Same-class boxes overlapping above the IoU limit, against every pair checked by hand:
    crowds of near-identical boxes, a same-place box of another class, and boxes that
    overlap a lot but not enough."""
    import json
    import random

    from PIL import Image

    rng = random.Random(5)
    anns, images, aid = [], [], 0
    pairs: list[tuple[int, int]] = []
    for img in range(6):
        Image.new("RGB", (200, 160), (img * 30, 90, 120)).save(tmp_path / f"{img}.png")
        images.append({"id": img + 1, "file_name": f"{img}.png", "width": 200, "height": 160})
        boxes: list[tuple[int, int, list[float]]] = []
        for _ in range(rng.randint(5, 25)):
            cat = rng.choice([1, 2])
            if boxes and rng.random() < 0.5:      # a jittered copy of an earlier box
                _, c0, (x, y, w, h) = rng.choice(boxes)
                cat = c0 if rng.random() < 0.8 else cat
                j = rng.choice([0.0, 0.3, 1.0, 3.0])
                box = [x + rng.uniform(-j, j), y + rng.uniform(-j, j), w, h]
            else:
                box = [rng.uniform(0, 120), rng.uniform(0, 90), rng.uniform(10, 70), rng.uniform(10, 60)]
            box = [max(0.0, box[0]), max(0.0, box[1]), box[2], box[3]]
            aid += 1
            boxes.append((aid, cat, box))
        for i, (ai, ci, a) in enumerate(boxes):
            for bi, cb, b in boxes[i + 1:]:
                iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
                ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
                inter = iw * ih
                if ci == cb and inter / (a[2] * a[3] + b[2] * b[3] - inter) > 0.9:
                    pairs.append((img * 1000 + ai, img * 1000 + bi))
        anns += [{"id": ai, "image_id": img + 1, "category_id": c, "bbox": b, "area": b[2] * b[3],
                  "iscrowd": 0} for ai, c, b in boxes]
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    ws = init_workspace(tmp_path / "ws")
    ingest.import_source(ws, tmp_path, "boxes", format="coco")
    suite = Suite(name="g", checks=[CheckSpec(name="dups", check="geometry",
                                              params={"max_iou_same_class": 0.9, "tolerance": 200})])
    r = svc.run_checks(ws, "boxes", suite, pixels=False).outcomes[0].result
    from viewfinder.services import versions as vs
    from viewfinder.services.look import VersionReader

    with VersionReader(ws, vs.resolve(ws, "boxes")) as rd:
        rows = rd.query("SELECT l.id, l.source_id, s.key FROM labels l JOIN samples s ON s.id = l.sample_id").to_pylist()
    label_of = {int(row["key"].split(".")[0]) * 1000 + int(row["source_id"]): row["id"] for row in rows}
    expected = {max(label_of[a], label_of[b]) for a, b in pairs}   # of each pair, the larger id
    assert len(pairs) > 10
    assert set(r.label_ids) == expected and r.label_count == len(expected)
    ws.close()


def test_schema_attributes_required_typed_and_allowed(tmp_path: Path) -> None:
    import json

    src = write_source(tmp_path / "src", fixed=True)
    path = src / "annotations" / "instances_train.json"
    doc = json.loads(path.read_text())
    for n, a in enumerate(doc["annotations"]):
        a["attributes"] = {"occluded": n % 2 == 0, "make": "fiat"}
    doc["annotations"][0]["attributes"] = {"make": "fiat"}                      # occluded missing
    doc["annotations"][1]["attributes"] = {"occluded": "yes", "make": "fiat"}   # not a bool
    doc["annotations"][2]["attributes"] = {"occluded": True, "make": "trabant"}  # not allowed
    path.write_text(json.dumps(doc))
    for split in ("val",):
        p = src / "annotations" / f"instances_{split}.json"
        d = json.loads(p.read_text())
        for a in d["annotations"]:
            a["attributes"] = {"occluded": False, "make": "audi"}
        p.write_text(json.dumps(d))
    ws = init_workspace(tmp_path / "ws")
    ingest.import_source(ws, src, "attrs")
    suite = parse_suite("""
name: attrs
checks:
  - name: attributes
    check: schema
    params:
      attributes:
        occluded: {type: bool}
        make: {type: str, values: [fiat, audi]}
""")
    r = svc.run_checks(ws, "attrs", suite, pixels=False).outcomes[0].result
    assert r.details["problems"] == {"attribute occluded missing": 1, "attribute occluded not bool": 1,
                                     "attribute make not an allowed value": 1}
    first = {label_id(ws, "attrs", "train/000000.png", a["id"]) for a in doc["annotations"][:3]}
    assert set(r.label_ids) == first
    ws.close()
