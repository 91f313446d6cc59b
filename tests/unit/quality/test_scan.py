"""A curator's journey: import, scan, read the findings, filter by them, rescan, move on
to the next version; and the same from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from tests.unit.quality.curation import PLANTED, sample_id, write_source
from viewfinder.api import Workspace
from viewfinder.cli.main import app
from viewfinder.errors import InvalidInput
from viewfinder.quality.findings import Finding, to_table
from viewfinder.services import edit, look
from viewfinder.services import scan as scans
from viewfinder.storage import findings as stored
from viewfinder.storage import query_cache

EXPECTED = {"blurry": 1, "corrupt": 1, "dark": 1, "exact_duplicate": 2, "grayscale": 1,
            "near_duplicate": 2, "odd_aspect_ratio": 1, "odd_size": 1,
            "overlapping_annotation": 1}
"""Every planted problem once (twice for the two members of a duplicate pair); the twenty
ordinary scenes have none, and nothing is an outlier."""


@pytest.fixture
def street(ws: Workspace, tmp_path: Path) -> Workspace:
    write_source(tmp_path / "src")
    ws.import_source(tmp_path / "src", "street")
    return ws


def keys(ws: Workspace, spec: str, flt: str) -> set[str]:
    return {s["key"] for s in look.samples_page(ws._ws, spec, flt, limit=1000, with_labels=False)}


def test_a_scan_finds_each_planted_problem_on_its_sample(street: Workspace) -> None:
    inner = street._ws
    result = scans.scan(inner, "street")
    assert result.counts == EXPECTED
    assert result.detectors == list(scans.DEFAULT_DETECTORS)
    assert result.per_detector["outliers"] == 0
    rows = scans.findings(inner, "street")
    assert len(rows) == sum(EXPECTED.values())
    where = {(r["kind"], r["key"]) for r in rows}
    assert where == {
        ("corrupt", PLANTED["truncated"]), ("dark", PLANTED["dark"]),
        ("blurry", PLANTED["blurry"]), ("grayscale", PLANTED["grayscale"]),
        ("odd_aspect_ratio", PLANTED["strip"]), ("odd_size", PLANTED["strip"]),
        ("exact_duplicate", PLANTED["copy_a"]), ("exact_duplicate", PLANTED["copy_b"]),
        ("near_duplicate", PLANTED["scene3"]), ("near_duplicate", PLANTED["resized"]),
        ("overlapping_annotation", PLANTED["double_box"]),
    }
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert all(0 <= r["score"] <= 1 for r in rows)
    overlap = scans.findings(inner, "street", kind="overlapping_annotation")[0]
    assert overlap["label_id"] and overlap["evidence"]["class"] == "car"
    assert [r["key"] for r in scans.findings(inner, "street", detector="exact_duplicates",
                                             limit=1)] == [PLANTED["copy_a"]]

    run = inner.catalog.get_run(result.run_id)
    assert run is not None and run["operation"] == "scan" and run["status"] == "succeeded"
    assert run["outputs"]["counts"] == EXPECTED and run["params"]["version"] == result.version


@pytest.mark.parametrize("through_cache", [False, True])
def test_findings_select_samples_in_filters(street: Workspace, through_cache: bool,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    scans.scan(street._ws, "street")
    if through_cache:  # the query cache of large versions answers the same
        monkeypatch.setattr(query_cache, "MIN_LABELS", 0)
    assert keys(street, "street", 'finding.kind == "near_duplicate"') == {
        PLANTED["scene3"], PLANTED["resized"]}
    assert keys(street, "street", 'finding.kind == "exact_duplicate" and split == "val"') == {
        PLANTED["copy_b"]}
    assert keys(street, "street", "count(finding.detector == \"image_problems\") >= 2") == {
        PLANTED["strip"]}
    assert keys(street, "street", "finding.evidence.cross_split == true") == {
        PLANTED["copy_a"], PLANTED["copy_b"]}
    assert keys(street, "street", 'finding.kind == "dark" and finding.score > 0.99') == set()
    assert keys(street, "street", 'all(finding.detector == "exact_duplicates") '
                                  'and count(finding.score >= 0) >= 1') == {
        PLANTED["copy_a"], PLANTED["copy_b"]}
    flagged = len({PLANTED[p] for p in ("truncated", "dark", "blurry", "grayscale", "strip")})
    total = look.count(street._ws, "street")
    assert look.count(street._ws, "street", 'not finding.detector == "image_problems"') == total - flagged
    assert look.count(street._ws, "street", 'finding.kind == "dark" or label.class == "car"') == total
    page = look.samples_page(street._ws, "street", 'finding.kind == "overlapping_annotation"')
    assert [s["key"] for s in page] == [PLANTED["double_box"]] and len(page[0]["labels"]) == 3
    if through_cache:
        assert list(street._ws.path.joinpath("cache", "query").rglob("*.duckdb"))


def test_a_rescan_replaces_findings_and_leaves_other_detectors_alone(street: Workspace) -> None:
    inner = street._ws
    first = scans.scan(inner, "street")
    again = scans.scan(inner, "street")
    assert again.counts == first.counts and again.run_id != first.run_id
    at_version = stored.read(inner, inner.catalog.get_dataset("street"), first.version)
    assert at_version.num_rows == sum(EXPECTED.values())  # replaced, not appended

    fewer = scans.scan(inner, "street", ["image_problems"],
                       {"image_problems": {"dark_max": 0.01, "kinds": ["dark", "blurry"]}})
    assert fewer.counts == {"blurry": 1}
    now = {r["kind"] for r in scans.findings(inner, "street")}
    assert "dark" not in now and "grayscale" not in now  # image_problems' old rows are gone
    assert {"exact_duplicate", "near_duplicate", "overlapping_annotation"} <= now  # others stay


def test_findings_belong_to_their_version(street: Workspace) -> None:
    inner = street._ws
    v1 = scans.scan(inner, "street").version
    # the curator tags what the scan found dark: a new version on main
    v2 = edit.tag_samples(inner, "street", 'finding.kind == "dark"', add=["dark"]).version.id
    assert keys(street, "street", '"dark" in tags') == {PLANTED["dark"]}
    assert scans.findings(inner, f"street@{v2}") == []  # not scanned yet
    assert look.count(inner, f"street@{v2}", "finding.score >= 0") == 0
    scans.scan(inner, f"street@{v2}", ["exact_duplicates"])
    assert {r["kind"] for r in scans.findings(inner, f"street@{v2}")} == {"exact_duplicate"}
    assert len(scans.findings(inner, f"street@{v1}")) == sum(EXPECTED.values())  # v1 kept
    assert keys(street, f"street@{v1}", 'finding.kind == "dark"') == {PLANTED["dark"]}
    assert keys(street, f"street@{v2}", 'finding.kind == "dark"') == set()


@pytest.mark.parametrize(("detectors", "params", "message"), [
    (["exact_duplicates", "spotless"], None, "unknown detector 'spotless'"),
    (["image_problems"], {"image_problems": {"dark_maxx": 0.1}}, "dark_maxx"),
    (["exact_duplicates"], {"image_problems": {"dark_max": 0.1}}, "does not run"),
])
def test_a_bad_request_is_refused_before_anything_runs(street: Workspace, detectors: list[str],
                                                       params: dict | None, message: str) -> None:
    inner = street._ws
    with pytest.raises(InvalidInput, match=message):
        scans.scan(inner, "street", detectors, params)
    assert scans.findings(inner, "street") == []
    with inner.catalog.engine.connect() as c:
        import sqlalchemy as sa

        operations = [r[0] for r in c.execute(sa.text("SELECT operation FROM runs"))]
    assert "scan" not in operations


def test_progress_is_reported_per_stage(street: Workspace) -> None:
    seen: list[tuple[str, int, int]] = []
    scans.scan(street._ws, "street", ["image_problems", "near_duplicates"],
               progress=lambda stage, done, total: seen.append((stage, done, total)))
    stages = {s for s, _, _ in seen}
    assert {"image scan", "embeddings", "image problems"} <= stages
    images = len(set(street.dataset("street").samples().column("content_hash").to_pylist()))
    assert [(d, t) for s, d, t in seen if s == "image scan"][-1] == (images, images)


def test_the_command_line(street: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setenv("VIEWFINDER_WORKSPACE", str(street.path))

    def run(*args: str, code: int = 0) -> str:
        r = runner.invoke(app, list(args))
        assert r.exit_code == code, r.output
        return r.output

    result = json.loads(run("scan", "street", "--json"))
    assert result["counts"] == EXPECTED and result["total"] == sum(EXPECTED.values())
    dark = json.loads(run("findings", "street", "--kind", "dark", "--json"))
    assert [(r["key"], r["sample_id"]) for r in dark] == [(PLANTED["dark"], sample_id(PLANTED["dark"]))]
    assert dark[0]["evidence"]["threshold"] == 0.1

    text = run("scan", "street", "--detectors", "exact_duplicates,overlapping_annotations",
               "--param", "overlapping_annotations.iou_threshold=0.97")
    assert "2 finding(s)" in text and "exact_duplicate" in text
    assert "overlapping_annotation" not in run("findings", "street", "--detector",
                                               "overlapping_annotations")
    table = run("findings", "street", "--limit", "3")
    assert "3 finding(s) (limit reached)" in table
    assert "spotless" in run("scan", "street", "--detectors", "spotless", code=1)
    assert "DETECTOR.OPTION=VALUE" in run("scan", "street", "--param", "dark_max=0.1", code=1)
    query = json.loads(run("query", "street", "--filter", 'finding.kind == "exact_duplicate"',
                           "--json"))
    assert {s["key"] for s in query["samples"]} == {PLANTED["copy_a"], PLANTED["copy_b"]}
    # the README's curation loop: tag what the scan found, on a new version
    run("scan", "street", "-d", "image_problems", "-p", 'image_problems.kinds=["dark","blurry"]')
    run("tag-samples", "street", "--filter", 'finding.kind in ["dark", "blurry"]', "--add", "recapture")
    tagged = json.loads(run("query", "street", "--filter", '"recapture" in tags', "--json"))
    assert {s["key"] for s in tagged["samples"]} == {PLANTED["dark"], PLANTED["blurry"]}


def test_stored_findings_are_replaced_per_version_and_detector(street: Workspace) -> None:
    inner = street._ws
    dataset = inner.catalog.get_dataset("street")

    def table(version: str, detector: str, *samples: str) -> pa.Table:
        return to_table([Finding("dark", 0.7, s) for s in samples], version_id=version,
                        detector=detector)

    assert stored.read(inner, dataset, "v1").num_rows == 0  # before any scan
    stored.replace(inner, dataset, "v1", ["a"], table("v1", "a", "s1", "s1", "s2"))
    stored.replace(inner, dataset, "v1", ["b"], table("v1", "b", "s3"))
    stored.replace(inner, dataset, "v2", ["a"], table("v2", "a", "s4"))
    assert stored.read(inner, dataset, "v1", detector="a").column("sample_id").to_pylist() == [
        "s1", "s2"]  # an identical row twice is stored once
    stored.replace(inner, dataset, "v1", ["a"], table("v1", "a"))  # a scan that found nothing
    assert stored.read(inner, dataset, "v1").column("detector").to_pylist() == ["b"]
    assert stored.read(inner, dataset, "v2").column("sample_id").to_pylist() == ["s4"]
    with pytest.raises(InvalidInput, match="rows of version"):
        stored.replace(inner, dataset, "v1", ["a"], table("v2", "a", "s1"))
    with pytest.raises(InvalidInput, match="rows of detector"):
        stored.replace(inner, dataset, "v1", ["b"], table("v1", "a", "s1"))


def test_scan_and_filter_on_every_storage_backend(any_ws: Workspace, tmp_path: Path) -> None:
    """The findings table lives beside the dataset's tables: local disk or S3, SQLite or
    PostgreSQL catalog alike."""
    write_source(tmp_path / "src")
    any_ws.import_source(tmp_path / "src", "street")
    inner = any_ws._ws
    result = scans.scan(inner, "street", ["exact_duplicates", "overlapping_annotations"])
    assert result.counts == {"exact_duplicate": 2, "overlapping_annotation": 1}
    scans.scan(inner, "street", ["exact_duplicates"])  # replaced, not appended
    assert len(scans.findings(inner, "street")) == 3
    assert keys(any_ws, "street", 'finding.kind == "exact_duplicate"') == {
        PLANTED["copy_a"], PLANTED["copy_b"]}
