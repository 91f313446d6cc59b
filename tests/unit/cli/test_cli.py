"""The command line, as a data engineer types it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from viewfinder.cli.main import app
from viewfinder.synthetic import make_coco


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    monkeypatch.setenv("VIEWFINDER_WORKSPACE", str(tmp_path / "ws"))

    def run(*args: str, ok: bool = True):  # type: ignore[no-untyped-def]
        r = runner.invoke(app, list(args))
        if ok:
            assert r.exit_code == 0, r.output
        return r

    run("init", str(tmp_path / "ws"))
    return run


def test_journey_import_edit_diff_export(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = make_coco(tmp_path / "src", n_images=10, seed=4)
    r = cli("import", str(src), "--dataset", "street", "--json")
    assert json.loads(r.stdout)["samples"] == 10
    assert "nothing changed" in cli("import", str(src), "-d", "street").stdout
    cli("tag", "street@main", "v1")
    cli("remap", "street", "--map", "car=vehicle")
    cli("split", "street", "--ratios", "train=0.5,val=0.5", "--seed", "1")
    cli("tag-samples", "street", "--filter", 'label.class == "dog"', "--add", "dog")
    d = json.loads(cli("diff", "street", "v1", "main", "--json").stdout)
    assert set(d) >= {"samples", "labels", "classes"}
    assert set(d["labels"]) == {"added", "removed", "changed"} and d["labels"]["changed"] > 0
    stats = json.loads(cli("stats", "street@v1", "--json").stdout)
    assert stats["samples"] == 10 and {"classes", "splits", "labels"} <= set(stats)
    q = json.loads(cli("query", "street", "--filter", '"dog" in tags', "--json").stdout)
    assert q["total"] == len(q["samples"]) and all("dog" in s["tags"] for s in q["samples"])
    log = json.loads(cli("log", "street", "--json").stdout)
    assert [v["message"].split()[0] for v in log[:3]] == ["tag", "split", "remap"]
    assert "v1" in log[3]["refs"]
    cli("export", "street@v1", str(tmp_path / "out"), "--format", "yolo")
    assert (tmp_path / "out" / "data.yaml").exists()


def test_branch_and_merge_from_the_cli(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("import", str(make_coco(tmp_path / "src", n_images=6, seed=4)), "-d", "s")
    cli("branch", "s", "fix")
    cli("remap", "s@fix", "--map", "dog=canine")
    assert "merged fix into main" in cli("merge", "s", "fix").stdout
    assert "canine" in json.loads(cli("stats", "s", "--json").stdout)["classes"]


def test_errors_are_one_clear_line_not_a_traceback(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("stats", "nope", ok=False)
    assert r.exit_code == 1 and "no dataset named 'nope'" in r.output and "Traceback" not in r.output
    cli("import", str(make_coco(tmp_path / "src", n_images=3, seed=4)), "-d", "s")
    r = cli("query", "s", "--filter", 'label.colour == "red"', ok=False)
    assert r.exit_code == 2 and "did you mean 'label.class'" in r.output and "column" in r.output


def test_failed_import_lists_problems_and_exits_1(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = make_coco(tmp_path / "src", n_images=3, seed=4, val_fraction=0)
    (src / "annotations" / "instances_train.json").write_text("{ not json")
    r = cli("import", str(src), "-d", "s", "--format", "coco", ok=False)
    assert r.exit_code == 1 and "instances_train.json" in r.output and "no version was created" in r.output
