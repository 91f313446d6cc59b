"""The governance commands, as a head of DataOps types them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from viewfinder.cli.main import app
from viewfinder.synthetic import make_coco

PW = "correct horse battery staple\n"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    monkeypatch.setenv("VIEWFINDER_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.delenv("VIEWFINDER_TOKEN", raising=False)

    def run(*args: str, ok: bool = True, input: str | None = None, token: str | None = None):  # type: ignore[no-untyped-def]
        env = {"VIEWFINDER_TOKEN": token} if token else None
        r = runner.invoke(app, list(args), input=input, env=env)
        if ok:
            assert r.exit_code == 0, r.output
        return r

    run("init", str(tmp_path / "ws"))
    return run


def test_journey_bootstrap_users_slices_tokens_audit(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = make_coco(tmp_path / "src", n_images=6, seed=2)
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({f"{i:06d}.jpg": {"region": "APAC" if i < 2 else "EMEA"} for i in range(6)}))
    cli("import", str(src), "--dataset", "street", "--metadata", str(meta))

    cli("admin", "bootstrap", "boss", "--org", "acme", "--password-stdin", input=PW)
    again = cli("admin", "bootstrap", "eve", "--password-stdin", input=PW, ok=False)
    assert again.exit_code == 1 and "only once" in again.output

    cli("team", "create", "vision-eu", "--org", "acme")
    cli("project", "create", "peds", "--org", "acme", "--team", "vision-eu", "--dataset", "street")
    cli("user", "create", "cora", "--password-stdin", input=PW)
    r = cli("user", "grant", "cora", "curator", "--project", "peds", "--slice", 'metadata.region=="APAC"')
    assert 'metadata.region == "APAC"' in r.stdout
    bad = cli("user", "grant", "cora", "curator", "--project", "peds", "--slice", '") or (1==1', ok=False)
    assert bad.exit_code == 2  # a filter syntax error
    two = cli("user", "grant", "cora", "viewer", "--org", "acme", "--team", "vision-eu", ok=False)
    assert "exactly one scope" in two.output
    users = {u["username"]: u for u in json.loads(cli("user", "list", "--json").stdout)}
    assert users["cora"]["roles"] == ['curator@project:peds [metadata.region == "APAC"]']
    assert users["boss"]["roles"] == ["head_of_dataops@org:acme"]

    # cora's token: acts as cora under the policy (the CLI is no back door)
    tok = json.loads(cli("user", "token", "create", "cora", "laptop", "--scope", "read", "--json").stdout)
    assert tok["token"].startswith(tok["prefix"])
    denied = cli("user", "create", "mallory", "--no-password", token=tok["token"], ok=False)
    assert denied.exit_code == 1 and "may not members.admin" in denied.output
    listed = json.loads(cli("user", "token", "list", "cora", "--json", token=tok["token"]).stdout)
    assert [t["name"] for t in listed] == ["laptop"] and "token" not in listed[0]
    assert cli("audit", "verify", token=tok["token"], ok=False).exit_code == 1

    # the head of DataOps' own token can administer
    boss_tok = json.loads(cli("user", "token", "create", "boss", "admin", "--scope", "admin",
                              "--json").stdout)["token"]
    cli("user", "create", "vic", "--no-password", token=boss_tok)
    cli("user", "token", "revoke", tok["id"])
    gone = cli("user", "token", "list", "cora", token=tok["token"], ok=False)
    assert "revoked" in gone.output

    v = json.loads(cli("audit", "verify", "--json").stdout)
    assert v["ok"] and v["events"] >= 10
    out = tmp_path / "audit.jsonl"
    cli("audit", "export", "--jsonl", str(out), "--action", "role.", "--since", "1d")
    events = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(e["action"], e["actor"], e["resource_id"]) for e in events] == [("role.grant", "system", "cora")]
    by_boss = json.loads(cli("audit", "log", "--actor", "boss", "--json").stdout)
    assert [(e["action"], e["resource_id"]) for e in by_boss] == [("user.create", "vic")]

    # tampering is reported with its seq, and the command fails
    from viewfinder.storage.workspace import open_workspace

    ws = open_workspace(tmp_path / "ws")
    with ws.catalog.engine.begin() as c:
        c.execute(sa.text("UPDATE audit_events SET actor = 'nobody' WHERE seq = 4"))
    ws.close()
    r = cli("audit", "verify", ok=False)
    assert r.exit_code == 1 and "seq 4" in r.output


def test_data_commands_obey_the_token_users_slice_and_are_audited(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The dataset commands (query, stats, export, tag-samples, remap, import) go through
    the same policy as the web UI when a token is set."""
    src = make_coco(tmp_path / "src", n_images=6, seed=2)
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({f"{i:06d}.jpg": {"region": "APAC" if i < 2 else "EMEA"} for i in range(6)}))
    cli("import", str(src), "--dataset", "street", "--metadata", str(meta))
    cli("org", "create", "acme")
    cli("project", "create", "peds", "--org", "acme", "--dataset", "street")
    cli("user", "create", "cora", "--no-password")
    cli("user", "grant", "cora", "curator", "--project", "peds", "--slice", 'metadata.region == "APAC"')
    cli("user", "create", "vic", "--no-password")
    cli("user", "grant", "vic", "viewer", "--project", "peds")
    cora = json.loads(cli("user", "token", "create", "cora", "t", "--scope", "read", "--scope", "write",
                          "--scope", "export", "--json").stdout)["token"]
    vic = json.loads(cli("user", "token", "create", "vic", "t", "--json").stdout)["token"]

    seen = json.loads(cli("query", "street", "--json", "--limit", "50", token=cora).stdout)
    assert seen["total"] == 2 and {s["metadata"]["region"] for s in seen["samples"]} == {"APAC"}
    assert json.loads(cli("stats", "street", "--json", token=cora).stdout)["samples"] == 2
    assert json.loads(cli("stats", "street", "--json").stdout)["samples"] == 6  # the system sees all

    out = tmp_path / "export"
    cli("export", "street", str(out), "--format", "yolo", token=cora)
    assert len(list((out / "images").rglob("*.jpg"))) == 2

    # tagging everything tags only the slice; whole-dataset edits are refused
    cli("tag-samples", "street", "--add", "reviewed", token=cora)
    tagged = json.loads(cli("query", "street", "--filter", '"reviewed" in tags', "--json").stdout)
    assert tagged["total"] == 2
    r = cli("remap", "street", "--map", "car=vehicle", token=cora, ok=False)
    assert r.exit_code == 1 and "whole dataset" in r.output

    # a viewer may read but not write, import or see other datasets
    assert cli("tag-samples", "street", "--add", "x", token=vic, ok=False).exit_code == 1
    r = cli("import", str(src), "--dataset", "street", token=vic, ok=False)
    assert r.exit_code == 1 and "may not dataset.write" in r.output
    cli("import", str(src), "--dataset", "other")
    r = cli("stats", "other", token=vic, ok=False)
    assert "no dataset named 'other'" in r.output

    events = tmp_path / "audit.jsonl"
    cli("audit", "export", "--jsonl", str(events), "--action", "dataset.")
    actions = [(e["action"], e["actor"]) for e in map(json.loads, events.read_text().splitlines())]
    assert ("dataset.export", "cora") in actions and ("dataset.tag_samples", "cora") in actions
    assert ("dataset.import", "system") in actions
