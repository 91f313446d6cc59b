"""Versions, refs, diff and merge as a data engineer uses them."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from viewfinder import AlreadyExists, InvalidInput, MergeConflict, RefNotFound
from viewfinder.api import Workspace, open_workspace
from viewfinder.services import versions as vs


@pytest.fixture
def street(ws: Workspace, coco_source: Path) -> Workspace:
    ws.import_source(coco_source, "street")
    return ws


def test_refs_resolve_by_branch_tag_id_and_prefix(street: Workspace) -> None:
    head = street.dataset("street").version
    street.tag("street@main", "v1")
    for ref in ("main", "v1", head.id, head.id[:8]):
        assert street.dataset(f"street@{ref}").version.id == head.id
    with pytest.raises(RefNotFound):
        street.dataset("street@nope")
    with pytest.raises(InvalidInput):
        street.dataset("street@")


def test_tags_are_fixed_and_versions_immutable(street: Workspace) -> None:
    street.tag("street@main", "v1")
    before = street.dataset("street@v1").labels().to_pylist()
    street.dataset("street").remap({"car": "vehicle"})
    with pytest.raises(AlreadyExists):
        street.tag("street@main", "v1")
    assert street.dataset("street@v1").labels().to_pylist() == before
    assert "vehicle" in street.dataset("street").stats()["classes"]


def test_log_lists_versions_newest_first_with_author_message_and_run(street: Workspace) -> None:
    street.dataset("street").tag_samples(None, add=["reviewed"], message="mark reviewed")
    log = street.log("street")
    assert [v.message for v in log][:1] == ["mark reviewed"]
    assert log[-1].message == "create dataset street"
    imp = log[1]
    assert imp.run_id and imp.parents == [log[2].id] and imp.author
    assert imp.summary["samples"] == 12


def test_branch_edits_do_not_touch_main(street: Workspace) -> None:
    main_before = street.dataset("street").version.id
    street.branch("street", "relabel")
    street.dataset("street@relabel").remap({"car": "vehicle"})
    assert street.dataset("street").version.id == main_before
    assert "vehicle" not in street.dataset("street").stats()["classes"]
    assert "vehicle" in street.dataset("street@relabel").stats()["classes"]


def test_edits_need_a_branch_not_a_tag(street: Workspace) -> None:
    street.tag("street@main", "v1")
    with pytest.raises(InvalidInput, match="not a branch"):
        street.dataset("street@v1").remap({"car": "vehicle"})


def test_diff_reports_changed_not_removed_and_added(street: Workspace) -> None:
    street.tag("street@main", "a")
    n_car = street.dataset("street").stats()["classes"]["car"]
    street.dataset("street").remap({"car": "vehicle"})
    d = street.diff("street", "a", "main").to_dict()
    assert d["labels"] == {"added": 0, "removed": 0, "changed": n_car}
    assert d["samples"] == {"added": 0, "removed": 0, "changed": 0}
    assert d["classes"]["car"] == {"a": n_car, "b": 0, "delta": -n_car}
    assert d["classes"]["vehicle"]["delta"] == n_car
    assert len(d["ids"]["labels"]["changed"]) == n_car


def test_three_way_merge_takes_both_sides(street: Workspace) -> None:
    street.branch("street", "curation")
    street.dataset("street@curation").tag_samples('split == "val"', add=["hard"])
    street.dataset("street").remap({"dog": "animal"})
    merged = street.merge("street", "curation")
    assert len(merged.parents) == 2
    ds = street.dataset("street")
    assert ds.count('"hard" in tags') == ds.count('split == "val"') > 0
    assert "animal" in ds.stats()["classes"] and "dog" not in ds.stats()["classes"]
    again = street.merge("street", "curation")
    assert again.id == merged.id  # already merged: nothing new


def test_conflicting_edits_are_reported_never_resolved(street: Workspace) -> None:
    street.branch("street", "other")
    street.dataset("street").remap({"car": "vehicle"})
    street.dataset("street@other").remap({"car": "automobile"})
    head = street.dataset("street").version.id
    with pytest.raises(MergeConflict) as e:
        street.merge("street", "other")
    assert e.value.conflicts and all(c.table == "labels" for c in e.value.conflicts)
    assert street.dataset("street").version.id == head  # nothing merged


def _tagger(path: str, tag: str) -> None:
    ws = open_workspace(path)
    for i in range(3):
        ws.dataset("street").tag_samples(None, add=[f"{tag}{i}"])


def test_concurrent_writers_never_lose_a_commit(street: Workspace) -> None:
    ctx = mp.get_context("forkserver")
    procs = [ctx.Process(target=_tagger, args=(str(street.path), t)) for t in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    tags = set(street.dataset("street").samples().column("tags").to_pylist()[0])
    assert tags == {"a0", "a1", "a2", "b0", "b1", "b2"}
    assert len(street.log("street")) == 2 + 6


def test_crash_between_table_write_and_catalog_commit_leaves_head_intact(
        street: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    head = street.dataset("street")
    labels_before = head.labels().to_pylist()
    inner = street._ws

    def crash(*_a: object, **_k: object) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(inner.catalog, "insert_version", crash)
    with pytest.raises(RuntimeError):
        head.remap({"car": "vehicle"})
    monkeypatch.undo()
    now = street.dataset("street")
    assert now.version.id == head.version.id and now.labels().to_pylist() == labels_before
    after = now.remap({"car": "vehicle"})  # the next commit builds on the real head
    assert after.version.parents == [head.version.id]


def test_dataset_names_are_checked(ws: Workspace) -> None:
    for bad in ("../x", "a b", "", "x@y", "-x"):
        with pytest.raises(InvalidInput):
            vs.check_name("dataset", bad)


def test_fast_diff_of_ancestors_agrees_with_the_full_join(ws: Workspace, coco_source: Path) -> None:
    """Diffs between an ancestor and a descendant read only the rows written since; they
    must say exactly what the full join says, through removals, re-adds and reverts."""
    import json

    from viewfinder.services.diff import table_changes

    ws.import_source(coco_source, "s")
    ann = coco_source / "annotations" / "instances_train.json"
    original = ann.read_text()
    doc = json.loads(original)
    gone = doc["images"].pop(0)
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] != gone["id"]]
    ann.write_text(json.dumps(doc))
    ws.import_source(coco_source, "s", mode="sync")          # sample and labels removed
    ws.branch("s", "side")
    ws.dataset("s@side").tag_samples(None, add=["t"])
    ws.dataset("s").remap({"car": "vehicle"})
    ws.dataset("s").remap({"vehicle": "car"})                # reverted: no change overall
    ann.write_text(original)
    ws.import_source(coco_source, "s", mode="sync")          # the sample comes back, same id
    ws.merge("s", "side")
    inner = ws._ws
    at = inner.catalog.get_dataset("s")
    history = list(reversed(ws.log("s")))
    tables = inner.tables(at)
    checked = 0
    for i, a in enumerate(history):
        for b in history[i + 1:]:
            from viewfinder.services.versions import ancestors

            if a.id not in ancestors(inner.catalog.all_versions(at.id), b.id):
                continue
            for table in ("samples", "labels"):
                fast = table_changes(tables, table, a, b, a_is_ancestor=True).to_pylist()
                slow = table_changes(tables, table, a, b).to_pylist()
                assert fast == slow, (table, a.message, b.message)
            checked += 1
    assert checked >= 15


def test_every_version_records_the_run_that_made_it(street: Workspace) -> None:
    street.dataset("street").remap({"car": "vehicle"})
    street.dataset("street").split({"train": 0.5, "val": 0.5}, seed=1)
    street.dataset("street").tag_samples('split == "val"', add=["v"])
    street.branch("street", "b")
    street.dataset("street@b").tag_samples(None, add=["b"])
    street.merge("street", "b")
    catalog = street._ws.catalog
    runs = []
    for v in street.log("street")[:-1]:  # all but "create dataset"
        run = catalog.get_run(v.run_id)
        assert run is not None and run["status"] == "succeeded" and run["code_version"]
        assert run["outputs"]["version"] == v.id
        runs.append(run)
    assert [r["operation"] for r in runs] == ["merge", "tag-samples", "tag-samples", "split", "remap", "import"]
    assert runs[4]["params"]["map"] == {"car": "vehicle"} and runs[0]["params"]["source"] == "b"


def test_a_commit_reuses_the_counts_of_a_table_it_did_not_write(
        street: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tagging samples writes the samples table only: the new version's label counts are
    its parent's (no scan of the labels), and equal a full recount."""
    from viewfinder.storage import duck

    scanned: list[str] = []
    connect = duck.connect
    monkeypatch.setattr(duck, "connect", lambda **rel: scanned.extend(rel) or connect(**rel))
    street.dataset("street").tag_samples('label.class == "dog"', add=["dog"])
    assert "l" not in scanned and "s" in scanned
    street.dataset("street").remap({"car": "vehicle"})  # writes the labels only
    inner = street._ws
    for v in vs.log(inner, "street")[:2]:
        tables = inner.tables(vs.resolve(inner, "street").dataset)
        fresh = vs.summarize(tables, v.samples_table_version, v.labels_table_version)
        assert {k: v.summary[k] for k in fresh} == fresh
    assert "vehicle" in street.dataset("street").stats()["classes"]


def test_box_size_percentiles_above_the_exact_limit_come_from_a_repeatable_sample(
        street: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above EXACT_QUANTILES_UP_TO labels a summary's percentiles come from about that
    many rows, picked by their values (the same version always gives the same figures,
    whatever the number of threads); every count and extreme stays exact."""
    inner = street._ws
    at = vs.resolve(inner, "street")
    tables = inner.tables(at.dataset)
    versions = (at.version.samples_table_version, at.version.labels_table_version)
    exact = vs.summarize(tables, *versions)
    monkeypatch.setattr(vs, "EXACT_QUANTILES_UP_TO", max(1, exact["labels"] // 3))
    sampled = [vs.summarize(tables, *versions) for _ in range(3)]
    assert sampled[0] == sampled[1] == sampled[2]
    s, e = sampled[0], exact
    assert s["classes"] == e["classes"] and s["box_sizes"]["buckets"] == e["box_sizes"]["buckets"]
    assert s["box_sizes"] != e["box_sizes"]  # percentiles of about a third of the rows
    for dim in ("width", "height"):
        d = s["box_sizes"][dim]
        assert (d["min"], d["max"]) == (e["box_sizes"][dim]["min"], e["box_sizes"][dim]["max"])
        assert d["min"] <= d["p5"] <= d["p25"] <= d["p50"] <= d["p75"] <= d["p95"] <= d["max"]
