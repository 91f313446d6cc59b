"""Release gates: a failing suite blocks a release, a forced release records its reason,
a passing version becomes a protected tag, and ``log`` shows it all."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.unit.quality.planted import CUSTOM_SUITE, HOSTILE, write_source
from viewfinder.cli.main import app
from viewfinder.errors import AlreadyExists, InvalidInput, ReleaseBlocked
from viewfinder.quality.suite import parse_suite
from viewfinder.services import checks as svc
from viewfinder.services import edit, ingest
from viewfinder.services import versions as vs
from viewfinder.storage.workspace import Workspace, init_workspace


@pytest.fixture
def planted(tmp_path: Path) -> Iterator[Workspace]:
    ws = init_workspace(tmp_path / "ws")
    src = write_source(tmp_path / "src")
    ingest.import_source(ws, src, "street", metadata=src / "meta.json")
    yield ws
    ws.close()


SUITE = parse_suite(CUSTOM_SUITE)


def test_failing_suite_blocks_the_release(planted: Workspace) -> None:
    with pytest.raises(ReleaseBlocked) as e:
        svc.release(planted, "street@main", "v1", suite=SUITE, pixels=False)
    assert "boxes are sane" in str(e.value)
    assert e.value.report["passed"] is False and e.value.report["counts"]["blocking"] == 6
    assert planted.catalog.get_ref(planted.catalog.get_dataset("street").id, "v1") is None
    # the blocking report is kept with the version
    latest = svc.latest_report(planted, "street", "main")
    assert latest is not None and latest.id == e.value.report["id"]


def test_force_needs_a_reason_and_records_it(planted: Workspace) -> None:
    for reason in (None, "", "   "):
        with pytest.raises(InvalidInput, match="needs a reason"):
            svc.release(planted, "street", "v1", suite=SUITE, force=True, reason=reason, pixels=False)
    rel = svc.release(planted, "street", "v1", suite=SUITE, force=True, pixels=False,
                      reason="pilot model needs data today; box fixes follow in v2", author="dana")
    assert rel.forced and not rel.report.passed
    ds = planted.catalog.get_dataset("street")
    ref = planted.catalog.get_ref(ds.id, "v1")
    assert ref is not None and ref.protected and ref.version_id == rel.version_id
    q = svc.version_quality(planted, "street")[rel.version_id]
    assert q["releases"] == [{"tag": "v1", "forced": True, "author": "dana", "report": rel.report.id,
                              "reason": "pilot model needs data today; box fixes follow in v2",
                              "created_at": q["releases"][0]["created_at"]}]
    assert q["check"]["passed"] is False

    # shown in the log, text and JSON
    runner = CliRunner()
    res = runner.invoke(app, ["log", "street", "--workspace", str(planted.path)])
    assert res.exit_code == 0, res.output
    assert "release v1 (FORCED by dana: pilot model needs data today" in res.output
    assert "checks: failed (suite street-release: 1 passed, 6 failed, 6 blocking" in res.output
    res = runner.invoke(app, ["log", "street", "--json", "--workspace", str(planted.path)])
    top = json.loads(res.stdout)[0]
    assert top["releases"][0]["forced"] is True and top["check"]["passed"] is False


def test_passing_version_is_released_as_a_protected_tag(planted: Workspace, tmp_path: Path) -> None:
    src = write_source(tmp_path / "fixed", fixed=True)
    ingest.import_source(planted, src, "street", mode="sync", metadata=src / "meta.json")
    edit.remap(planted, "street", {"dog": "car", HOSTILE: "person"})
    rel = svc.release(planted, "street@main", "v2", suite=SUITE, pixels=False)
    assert not rel.forced and rel.report.passed and rel.reason is None
    ds = planted.catalog.get_dataset("street")
    ref = planted.catalog.get_ref(ds.id, "v2")
    assert ref is not None and ref.kind == "tag" and ref.protected
    assert vs.resolve(planted, "street@v2").version.id == vs.resolve(planted, "street@main").version.id
    # a released tag never moves: the name cannot be taken again, by a release or a tag
    with pytest.raises(AlreadyExists):
        svc.release(planted, "street", "v2", suite=SUITE, pixels=False)
    with pytest.raises(AlreadyExists):
        vs.tag(planted, "street", "v2")
    with pytest.raises(InvalidInput):     # and nothing can be committed to it
        edit.remap(planted, "street@v2", {"car": "vehicle"})


def test_cli_release_blocked_then_forced(planted: Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    w = ["--workspace", str(planted.path)]
    suite = tmp_path / "suite.yaml"
    suite.write_text(CUSTOM_SUITE)
    res = runner.invoke(app, ["release", "street@main", "--tag", "v1", "--suite", str(suite), "--no-pixels",
                              "--junit", str(tmp_path / "j.xml"), *w])
    assert res.exit_code == 1
    assert "blocked" in res.output and (tmp_path / "j.xml").exists()
    res = runner.invoke(app, ["release", "street@main", "--tag", "v1", "--suite", str(suite), "--no-pixels",
                              "--force", *w])
    assert res.exit_code == 1 and "needs a reason" in res.output
    res = runner.invoke(app, ["release", "street@main", "--tag", "v1", "--suite", str(suite), "--no-pixels",
                              "--force", "--reason", "demo", *w])
    assert res.exit_code == 0, res.output
    assert "released street@v1" in res.output and "forced: demo" in res.output
