"""Detectors on small real datasets: each planted problem is found on its sample, and
ordinary images are left alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.unit.quality.curation import (
    PLANTED,
    jpeg,
    sample_id,
    scene,
    write_coco,
    write_source,
)
from viewfinder.api import Workspace, init_workspace
from viewfinder.errors import InvalidInput
from viewfinder.quality import detectors
from viewfinder.quality.context import QualityContext
from viewfinder.quality.findings import Finding
from viewfinder.services import versions as vs


def _import(ws: Workspace, root: Path, images: dict[str, bytes],
            boxes: dict[str, list[tuple[str, list[float]]]] | None = None) -> str:
    write_coco(root, images, boxes)
    ws.import_source(root, "set")
    _key_of.update((sample_id(k), k) for k in images)
    return "set"


def _run(ws: Workspace, name: str, spec: str = "set", **params: Any) -> list[Finding]:
    with QualityContext(ws._ws, vs.resolve(ws._ws, spec)) as ctx:
        return detectors.run(ctx, name, params)


def _keys(findings: list[Finding], kind: str | None = None) -> dict[str, Finding]:
    """Findings by sample key (sample ids are derived from keys)."""
    return {_key_of[f.sample_id]: f for f in findings if kind is None or f.kind == kind}


_key_of: dict[str, str] = {}  # sample id -> key, filled as the tests import datasets


@pytest.fixture(scope="module")
def street(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """The curation dataset (tests/unit/quality/curation.py), imported once."""
    root = tmp_path_factory.mktemp("street")
    write_source(root / "src")
    ws = init_workspace(root / "ws")
    ws.import_source(root / "src", "street")
    _key_of.update((s["id"], s["key"]) for s in ws.dataset("street").samples().to_pylist())
    yield ws
    ws.close()


# ---------------------------------------------------------------------------------------
# the curation dataset: every planted problem, nothing else


@pytest.mark.parametrize(("kind", "planted"), [
    ("corrupt", ["truncated"]),
    ("dark", ["dark"]),
    ("blurry", ["blurry"]),
    ("grayscale", ["grayscale"]),
    ("odd_aspect_ratio", ["strip"]),
    ("odd_size", ["strip"]),
    ("bright", []),
    ("low_information", []),
])
def test_image_problems_flag_exactly_the_planted_samples(street: Workspace, kind: str,
                                                         planted: list[str]) -> None:
    found = _keys(_run(street, "image_problems", "street"), kind)
    assert set(found) == {PLANTED[p] for p in planted}
    for f in found.values():
        assert 0.5 <= f.score <= 1.0


def test_image_problem_evidence_says_why(street: Workspace) -> None:
    found = _run(street, "image_problems", "street")
    dark = _keys(found, "dark")[PLANTED["dark"]]
    assert dark.evidence["brightness"] < dark.evidence["threshold"] == 0.1
    corrupt = _keys(found, "corrupt")[PLANTED["truncated"]]
    assert corrupt.evidence["error"] == "truncated" and corrupt.score == 1.0
    strip = _keys(found, "odd_aspect_ratio")[PLANTED["strip"]]
    assert strip.evidence["aspect_ratio"] == 40.0
    assert strip.evidence["median_aspect_ratio"] == pytest.approx(4 / 3, abs=1e-3)
    gray = _keys(found, "grayscale")[PLANTED["grayscale"]]
    assert gray.evidence["color_share"] > 0.9


def test_a_stricter_threshold_finds_more_and_a_looser_one_less(street: Workspace) -> None:
    assert not _keys(_run(street, "image_problems", "street", dark_max=0.04), "dark")
    brighter = _keys(_run(street, "image_problems", "street", dark_max=0.45,
                          bright_min=0.6, kinds=["dark"]), "dark")
    assert PLANTED["dark"] in brighter and len(brighter) > 1


def test_exact_duplicates_are_one_group_that_names_the_others(street: Workspace) -> None:
    found = _keys(_run(street, "exact_duplicates", "street"))
    assert set(found) == {PLANTED["copy_a"], PLANTED["copy_b"]}
    a, b = found[PLANTED["copy_a"]], found[PLANTED["copy_b"]]
    assert a.group_id == b.group_id and a.group_id.startswith("exact:")
    assert [o["key"] for o in a.evidence["others"]] == [PLANTED["copy_b"]]
    assert a.evidence["cross_split"] is True and a.evidence["splits"] == ["train", "val"]


def test_near_duplicates_pair_the_resized_copy_and_not_the_identical_files(street: Workspace) -> None:
    found = _keys(_run(street, "near_duplicates", "street"))
    assert set(found) == {PLANTED["scene3"], PLANTED["resized"]}
    f = found[PLANTED["resized"]]
    assert f.group_id == found[PLANTED["scene3"]].group_id
    assert f.evidence["nearest"]["key"] == PLANTED["scene3"]
    assert f.evidence["via"] == ["embedding", "phash"]
    assert f.evidence["nearest"]["phash_distance"] <= 10
    assert f.evidence["nearest"]["embedding_distance"] < 0.1


def test_overlapping_boxes_flag_the_second_label_only(street: Workspace) -> None:
    found = _run(street, "overlapping_annotations", "street")
    assert len(found) == 1
    f = found[0]
    assert f.sample_id == sample_id(PLANTED["double_box"]) and f.label_id is not None
    assert f.evidence["class"] == "car" and f.evidence["duplicate_of"] != f.label_id
    assert f.score == pytest.approx(39 * 30 / (2 * 40 * 30 - 39 * 30))  # the IoU
    assert not _run(street, "overlapping_annotations", "street", iou_threshold=0.96)


# ---------------------------------------------------------------------------------------
# datasets made for one detector


def test_near_duplicate_groups_are_groups_not_pairs(ws: Workspace, tmp_path: Path) -> None:
    base = scene(3)
    images = {f"train/other{i}.jpg": jpeg(scene(40 + i)) for i in range(6)}
    images |= {
        "train/original.jpg": jpeg(base),
        "train/copy.jpg": jpeg(base),                                   # byte-identical
        "train/smaller.jpg": jpeg(base.resize((100, 75)), 70),
        "val/recoded.jpg": jpeg(base, 55),
        "train/cropped.jpg": jpeg(base.crop((6, 4, 154, 116)).resize((160, 120))),
    }
    _import(ws, tmp_path / "src", images)
    members = {"train/original.jpg", "train/copy.jpg", "train/smaller.jpg", "val/recoded.jpg",
               "train/cropped.jpg"}
    for params in ({}, {"use_embeddings": False}, {"phash_max_distance": -1}):
        found = _keys(_run(ws, "near_duplicates", **params))
        assert members - {"train/cropped.jpg"} <= set(found) <= members, params
        assert len({f.group_id for f in found.values()}) == 1, params
    found = _keys(_run(ws, "near_duplicates"))
    assert set(found) == members
    original = found["train/original.jpg"]
    same = {m["key"]: m["same_image"] for m in original.evidence["members"]}
    assert same == {"train/copy.jpg": True, "train/smaller.jpg": False,
                    "val/recoded.jpg": False, "train/cropped.jpg": False}
    assert original.evidence["cross_split"] is True and original.evidence["group_size"] == 4


def test_outlier_is_the_image_unlike_the_rest(ws: Workspace, tmp_path: Path) -> None:
    images = {}
    for i in range(30):
        rng = np.random.default_rng(i)
        base = scene(7 + i % 3)  # three families of similar shots
        dx, dy = (int(v) for v in rng.integers(-6, 7, 2))
        shifted = base.transform(base.size, Image.Transform.AFFINE, (1, 0, dx, 0, 1, dy))
        images[f"train/shot{i:02d}.jpg"] = jpeg(shifted)
    yy, xx = np.mgrid[0:120, 0:160]
    board = ((xx // 8 + yy // 8) % 2 * 255).astype(np.uint8)
    images["train/odd.jpg"] = jpeg(Image.fromarray(np.stack([board, 255 - board, board // 2], -1)))
    _import(ws, tmp_path / "src", images)
    found = _keys(_run(ws, "outliers"))
    assert set(found) == {"train/odd.jpg"}
    f = found["train/odd.jpg"]
    assert f.evidence["z"] > f.evidence["z_threshold"] and 0.5 <= f.score <= 1
    assert len(f.evidence["nearest"]) == 3
    assert not _run(ws, "outliers", min_images=40)  # too few images to judge


def test_grayscale_and_size_are_judged_against_the_dataset(ws: Workspace, tmp_path: Path) -> None:
    images = {f"train/g{i:02d}.jpg": jpeg(scene(i, (640, 480)).convert("L")) for i in range(12)}
    images["train/colour.jpg"] = jpeg(scene(50, (640, 480)))
    images["train/wider.jpg"] = jpeg(scene(51, (641, 480)).convert("L"))
    images["train/tall.jpg"] = jpeg(scene(52, (480, 640)).convert("L"))
    images["train/tiny.jpg"] = jpeg(scene(53).resize((12, 9)).convert("L"))
    _import(ws, tmp_path / "src", images)
    found = _run(ws, "image_problems", kinds=["grayscale", "odd_size", "odd_aspect_ratio"])
    assert not _keys(found, "grayscale")  # a grayscale dataset: grayscale is normal
    assert set(_keys(found, "odd_size")) == {"train/tiny.jpg"}  # 641×480 is not odd
    assert not _keys(found, "odd_aspect_ratio")  # 3:4 against 4:3 is within a factor of 2


def test_overlaps_group_three_copies_and_skip_other_classes(ws: Workspace, tmp_path: Path) -> None:
    boxes = {"train/a.jpg": [("car", [10, 10, 50, 40]), ("car", [10, 10, 50, 40]),
                             ("car", [11, 10, 50, 40]), ("person", [10, 10, 50, 40]),
                             ("car", [80, 60, 50, 40])]}
    _import(ws, tmp_path / "src", {"train/a.jpg": jpeg(scene(1))}, boxes)
    found = _run(ws, "overlapping_annotations")
    assert len(found) == 2 and len({f.group_id for f in found}) == 1
    labels = {r["id"]: r for r in ws.dataset("set").labels().to_pylist()}
    first_car = min((r for r in labels.values() if r["class_name"] == "car"),
                    key=lambda r: int(r["source_id"]))
    assert {f.evidence["duplicate_of"] for f in found} == {first_car["id"]}
    assert all(labels[f.label_id]["class_name"] == "car" for f in found)
    assert first_car["id"] not in {f.label_id for f in found}
    assert found[0].evidence["group_size"] == 3


# ---------------------------------------------------------------------------------------
# configuration


@pytest.mark.parametrize(("name", "params", "message"), [
    ("image_problems", {"dark_maxx": 0.1}, "dark_maxx"),
    ("image_problems", {"kinds": ["dark", "spooky"]}, "unknown kind(s) spooky"),
    ("image_problems", {"dark_max": 0.95}, "dark_max must be below bright_min"),
    ("overlapping_annotations", {"iou_threshold": 1.5}, "iou_threshold"),
    ("near_duplicates", {"phash_max_distance": 40}, "phash_max_distance"),
    ("near_duplicates", {"phash_max_distance": -1, "use_embeddings": False}, "nothing to compare"),
])
def test_a_misspelled_or_impossible_option_is_an_error(name: str, params: dict[str, Any],
                                                       message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        detectors.make_config(detectors.get(name), params)


def test_every_detector_module_matches_the_protocol() -> None:
    for name in ("exact_duplicates", "near_duplicates", "image_problems", "outliers",
                 "overlapping_annotations"):
        det = detectors.get(name)
        assert det.name == name and det.description
        assert isinstance(det.needs_pixels, bool)
        det.Config()  # defaults work out of the box
