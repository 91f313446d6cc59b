"""Edits a curator makes: remap classes, split, tag samples."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from viewfinder import InvalidInput
from viewfinder.api import Workspace
from viewfinder.services.edit import assign_splits, parse_mapping, parse_ratios
from viewfinder.synthetic import make_coco


@pytest.fixture
def big(ws: Workspace, tmp_path: Path) -> Workspace:
    ws.import_source(make_coco(tmp_path / "src", n_images=200, size=(64, 48), seed=2), "big")
    return ws


def test_remap_merges_classes_and_updates_the_class_list(big: Workspace) -> None:
    before = big.dataset("big").stats()["classes"]
    ds = big.dataset("big").remap({"car": "vehicle", "bicycle": "vehicle"})
    after = ds.stats()["classes"]
    assert after["vehicle"] == before["car"] + before["bicycle"]
    assert "car" not in after and "bicycle" not in after
    assert ds.classes == ["vehicle", "person", "dog"]


def test_split_is_deterministic_and_proportional(big: Workspace) -> None:
    big.branch("big", "b2")
    a = big.dataset("big").split({"train": 0.8, "val": 0.2}, seed=3)
    b = big.dataset("big@b2").split({"train": 0.8, "val": 0.2}, seed=3)
    sa = a.samples().select(["id", "split"]).to_pylist()
    assert sa == b.samples().select(["id", "split"]).to_pylist()
    assert Counter(r["split"] for r in sa) == {"train": 160, "val": 40}


def test_split_group_by_keeps_groups_together(big: Workspace, tmp_path: Path) -> None:
    ds = big.dataset("big").split({"train": 0.5, "val": 0.5}, group_by="folder", seed=1)
    by_folder: dict[str, set[str]] = {}
    for r in ds.samples().select(["key", "split"]).to_pylist():
        by_folder.setdefault(r["key"].split("/")[0], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_folder.values())


def test_stratified_split_keeps_class_proportions(big: Workspace) -> None:
    ds = big.dataset("big").split({"train": 0.5, "val": 0.5}, stratify=True, seed=0)
    for cls in ds.stats()["classes"]:
        tr = ds.count(f'split == "train" and label.class == "{cls}"')
        va = ds.count(f'split == "val" and label.class == "{cls}"')
        assert abs(tr - va) <= 0.3 * (tr + va) + 2, cls


def test_assign_splits_largest_remainder() -> None:
    out = assign_splits({str(i): None for i in range(10)}, {"a": 0.34, "b": 0.33, "c": 0.33}, seed=0)
    assert Counter(out.values()) == {"a": 4, "b": 3, "c": 3}


def test_tag_samples_add_and_remove(big: Workspace) -> None:
    ds = big.dataset("big").tag_samples('label.class == "dog"', add=["has-dog", "check"])
    n = ds.count('label.class == "dog"')
    assert ds.count('"has-dog" in tags') == n
    ds = ds.tag_samples(None, remove=["check"])
    assert ds.count('"check" in tags') == 0 and ds.count('"has-dog" in tags') == n


@pytest.mark.parametrize("text", ["a", "=b", "a=", ""])
def test_bad_mappings(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_mapping(text)


@pytest.mark.parametrize("text", ["train=0.8", "train=0.8,val=0.3", "train=x,val=1", "train=-1,val=2"])
def test_bad_ratios(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_ratios(text)
