"""A sliced curator sees and edits only its samples, in every use case a front door calls."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from tests.unit.governance.conftest import Org, regions
from viewfinder.errors import DatasetNotFound, PermissionDenied
from viewfinder.governance import audit
from viewfinder.governance.principal import SYSTEM
from viewfinder.services import access, edit, look
from viewfinder.services import versions as vs

APAC = 'metadata.region == "APAC"'


def _ids_by_region(gov: Org) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"APAC": set(), "EMEA": set()}
    for s in look.samples_page(gov.ws, "street", limit=100, with_labels=False):
        out[s["metadata"]["region"]].add(s["id"])
    return out


@pytest.fixture
def curator(gov: Org):  # type: ignore[no-untyped-def]
    return gov.user("apac-cur", "curator", ("project", "peds-eu"), slice=APAC)


def test_pages_counts_and_stats_hold_only_the_slice(gov: Org, curator) -> None:  # type: ignore[no-untyped-def]
    by = _ids_by_region(gov)
    assert len(by["APAC"]) == 6 and len(by["EMEA"]) == 6
    page = access.samples_page(gov.ws, curator, "street", limit=100)
    assert {s["id"] for s in page} == by["APAC"]
    assert all(s["metadata"]["region"] == "APAC" for s in page)
    assert access.count(gov.ws, curator, "street") == 6
    assert access.count(gov.ws, curator, "street", 'metadata.region == "EMEA"') == 0
    st = access.stats(gov.ws, curator, "street")
    full = look.stats(gov.ws, "street", APAC)
    assert (st["samples"], st["labels"], st["classes"]) == (6, full["labels"], full["classes"])
    assert st["labels"] < look.stats(gov.ws, "street")["labels"]
    # the unsliced view of the same dataset, for contrast
    eng = gov.user("eng", "data_engineer", ("org", "acme"))
    assert access.count(gov.ws, eng, "street") == 12
    listed = {d["name"]: d for d in access.list_datasets(gov.ws, curator)}
    assert list(listed) == ["street"]
    assert (listed["street"]["samples"], listed["street"]["project"]) == (6, "peds-eu")


def test_images_and_details_outside_the_slice_are_not_found(gov: Org, curator) -> None:  # type: ignore[no-untyped-def]
    by = _ids_by_region(gov)
    apac_id, emea_id = min(by["APAC"]), min(by["EMEA"])
    data = access.image_bytes(gov.ws, curator, "street", apac_id)
    assert Image.open(io.BytesIO(data)).size == (160, 120)
    with pytest.raises(access.SampleNotFound):
        access.image_bytes(gov.ws, curator, "street", emea_id)
    with pytest.raises(access.SampleNotFound):
        access.sample_detail(gov.ws, curator, "street", emea_id)
    with pytest.raises(DatasetNotFound):  # another team's dataset does not exist for it
        access.image_bytes(gov.ws, curator, "signs", apac_id)


def test_sample_detail_has_labels_metadata_and_history(gov: Org, curator) -> None:  # type: ignore[no-untyped-def]
    sid = min(_ids_by_region(gov)["APAC"])
    imported = vs.resolve(gov.ws, "street").version.id  # the empty first version precedes it
    access.tag_samples(gov.ws, curator, "street", [sid], add=["reviewed"])
    edit.tag_samples(gov.ws, "street", f'id != "{sid}"', add=["other"])  # does not touch sid
    d = access.sample_detail(gov.ws, curator, "street", sid)
    assert d["sample"]["metadata"]["region"] == "APAC"
    assert d["sample"]["tags"] == ["reviewed"] and d["sample"]["labels"]
    hist = d["history"]
    assert [h["sample"] for h in hist] == ["added", "changed"]
    assert hist[0]["version"] == imported and len(vs.log(gov.ws, "street")) == 4
    assert hist[0]["labels"]["added"] == len(d["sample"]["labels"])
    assert "tag samples +reviewed" in hist[1]["message"]


def test_export_holds_only_the_slice_and_is_audited(gov: Org, curator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = access.export(gov.ws, curator, "street", tmp_path / "out", "coco", ip="10.2.3.4")
    assert r.samples == 6
    docs = [json.loads(p.read_text()) for p in (tmp_path / "out").rglob("*.json")]
    files = {Path(im["file_name"]).name for doc in docs for im in doc["images"]}
    assert files == {f for f, reg in regions(12).items() if reg == "APAC"}
    ev = audit.query(gov.ws, audit.AuditFilter(action="dataset.export"))[-1]
    assert (ev.actor, ev.ip, ev.details["samples"], ev.details["slice"]) == ("apac-cur", "10.2.3.4", 6, APAC)
    n = access.download_images(gov.ws, curator, "street", 'split == "train"', tmp_path / "img.zip")
    with zipfile.ZipFile(tmp_path / "img.zip") as z:
        names = {Path(x).name for x in z.namelist()}
    assert len(names) == n and names <= files
    assert audit.query(gov.ws, audit.AuditFilter(action="dataset.download"))[-1].details["samples"] == n


def test_diff_is_limited_to_the_slice(gov: Org, curator) -> None:  # type: ignore[no-untyped-def]
    vs.tag(gov.ws, "street", "v1")
    edit.tag_samples(gov.ws, "street", None, add=["all"])          # every sample changes
    edit.remap(gov.ws, "street", {c: "thing" for c in look.stats(gov.ws, "street")["classes"]})
    full = access.diff(gov.ws, SYSTEM, "street", "v1", "main")
    sliced = access.diff(gov.ws, curator, "street", "v1", "main")
    by = _ids_by_region(gov)
    assert set(full.samples.changed) == by["APAC"] | by["EMEA"]
    assert set(sliced.samples.changed) == by["APAC"]
    apac_labels = sum(len(s["labels"]) for s in look.samples_page(gov.ws, "street", APAC, limit=100))
    assert len(sliced.labels.changed) == apac_labels < len(full.labels.changed)
    assert sliced.classes["thing"] == {"a": 0, "b": apac_labels, "delta": apac_labels}


def test_sliced_curator_tags_only_its_samples_and_the_edit_is_audited(gov: Org, curator) -> None:  # type: ignore[no-untyped-def]
    by = _ids_by_region(gov)
    apac, emea = sorted(by["APAC"]), sorted(by["EMEA"])
    before = vs.resolve(gov.ws, "street").version.id
    with pytest.raises(access.SampleNotFound, match=emea[0]):
        access.tag_samples(gov.ws, curator, "street", [apac[0], emea[0]], add=["bad"])
    assert vs.resolve(gov.ws, "street").version.id == before  # nothing was written
    res = access.tag_samples(gov.ws, curator, "street", apac[:2], add=["hard"])
    assert res.created and res.version.changes["samples"]["changed"] == 2
    assert look.count(gov.ws, "street", '"hard" in tags') == 2
    ev = audit.query(gov.ws, audit.AuditFilter(action="dataset.tag_samples"))[-1]
    assert (ev.actor, ev.before, ev.after) == ("apac-cur", {"version": before}, {"version": res.version.id})
    viewer = gov.user("v", "viewer", ("org", "acme"))
    with pytest.raises(PermissionDenied):
        access.tag_samples(gov.ws, viewer, "street", apac[:1], add=["x"])


def test_admin_use_cases_check_members_admin_and_are_audited(gov: Org) -> None:
    head = gov.user("boss", "head_of_dataops", ("org", "acme"))
    cur = gov.user("cur", "curator", ("org", "acme"))
    access.create_user(gov.ws, head, "newbie", "a long enough password")
    access.grant_role(gov.ws, head, "newbie", "curator", scope_kind="project", scope_name="peds-eu",
                      slice=APAC, ip="10.9.9.9")
    with pytest.raises(PermissionDenied):
        access.create_user(gov.ws, cur, "sneaky")
    with pytest.raises(PermissionDenied):
        access.grant_role(gov.ws, cur, "cur", "head_of_dataops", scope_kind="org", scope_name="acme")
    assert [b.role for b in access.list_bindings(gov.ws, cur, "cur")] == ["curator"]  # own bindings
    assert [b.username for b in access.list_bindings(gov.ws, cur)] == ["cur"]  # all it may see
    assert len({b.username for b in access.list_bindings(gov.ws, head)}) == 3
    with pytest.raises(PermissionDenied):
        access.list_bindings(gov.ws, cur, "boss")
    ev = audit.query(gov.ws, audit.AuditFilter(action="role.grant", actor="boss"))[-1]
    assert (ev.resource_id, ev.details["slice"], ev.ip) == ("newbie", APAC, "10.9.9.9")
    assert access.revoke_role(gov.ws, head, "newbie", "curator", scope_kind="project",
                              scope_name="peds-eu") == 1
    # tokens: one's own freely, others' only as admin; a read token cannot mint a write token
    tok, info = access.create_token(gov.ws, cur, "cur", "laptop", scopes=["read"])
    from viewfinder.governance.tokens import TokenNotFound, resolve_token

    with pytest.raises(PermissionDenied):
        access.create_token(gov.ws, resolve_token(gov.ws, tok), "cur", "more", scopes=["read", "write"])
    _, boss_tok = access.create_token(gov.ws, head, "boss", "admin")
    with pytest.raises(TokenNotFound):
        access.revoke_token(gov.ws, cur, boss_tok.id)
    assert access.revoke_token(gov.ws, head, info.id).revoked_at is not None
    assert access.audit_verify(gov.ws, head).ok
    with pytest.raises(PermissionDenied):
        access.audit_verify(gov.ws, cur)


def test_whole_dataset_edits_need_an_unsliced_write_and_are_audited(gov: Org, curator) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PermissionDenied, match="whole dataset"):
        access.split(gov.ws, curator, "street", {"train": 0.5, "val": 0.5})
    with pytest.raises(PermissionDenied, match="whole dataset"):
        access.remap(gov.ws, curator, "street", {"car": "vehicle"})
    eng = gov.user("eng", "data_engineer", ("team", "vision-eu"))
    before = vs.resolve(gov.ws, "street").version.id
    res = access.split(gov.ws, eng, "street", {"train": 0.5, "val": 0.5}, seed=3)
    assert res.created
    access.create_tag(gov.ws, eng, "street", "v-split")
    access.create_branch(gov.ws, eng, "street", "fix", from_ref="v-split")
    ev = {e.action: e for e in audit.query(gov.ws, audit.AuditFilter(actor="eng"))}
    assert ev["dataset.split"].before == {"version": before}
    assert ev["dataset.split"].after == {"version": res.version.id}
    assert ev["dataset.tag"].details == {"tag": "v-split"}
    assert ev["dataset.branch"].after == {"version": res.version.id}
    with pytest.raises(DatasetNotFound):  # another team's dataset
        access.create_tag(gov.ws, eng, "signs", "nope")


def test_an_edit_and_its_audit_event_commit_together(gov: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    """The event is written in the version's own catalog transaction: when the audit log
    cannot be written, the edit does not happen either (no unaudited change)."""
    eng = gov.user("eng", "data_engineer", ("team", "vision-eu"))
    head = vs.resolve(gov.ws, "street").version.id
    real = audit.record

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs.get("conn") is not None:
            raise RuntimeError("audit log unavailable")
        return real(*args, **kwargs)

    monkeypatch.setattr(audit, "record", failing)
    with pytest.raises(RuntimeError, match="audit log unavailable"):
        access.remap(gov.ws, eng, "street", {"car": "vehicle"})
    assert vs.resolve(gov.ws, "street").version.id == head           # the edit rolled back
    monkeypatch.setattr(audit, "record", real)
    res = access.remap(gov.ws, eng, "street", {"car": "vehicle"})
    ev = [e for e in audit.query(gov.ws, audit.AuditFilter(actor="eng")) if e.action == "dataset.remap"]
    assert len(ev) == 1 and ev[0].after == {"version": res.version.id}
    assert ev[0].before == {"version": head} and ev[0].details["created"] is True
    again = access.remap(gov.ws, eng, "street", {"car": "vehicle"})  # nothing left to rename
    assert not again.created
    last = audit.query(gov.ws, audit.AuditFilter(actor="eng"))
    assert [e.details["created"] for e in last if e.action == "dataset.remap"].count(False) == 1
    assert audit.verify(gov.ws).ok


def test_python_api_with_a_token_obeys_the_same_slice(gov: Org, curator) -> None:  # type: ignore[no-untyped-def]
    """An ML engineer's script with a curator's token: the Python API is no back door."""
    import viewfinder as vf
    from viewfinder.governance import tokens

    token, _info = tokens.create_token(gov.ws, SYSTEM, "apac-cur", "notebook", scopes=["read", "write"])
    session = vf.open_workspace(gov.ws.path, token=token)
    assert session.datasets() == ["street"]
    with pytest.raises(DatasetNotFound):
        session.dataset("loose")
    street = session.dataset("street")
    apac = _ids_by_region(gov)["APAC"]
    assert {s.id for s in street.iter_samples()} == apac
    assert set(street.samples().column("id").to_pylist()) == apac
    assert street.count() == len(apac) and street.stats()["samples"] == len(apac)
    assert {r["sample_id"] for r in street.labels().to_pylist()} <= apac
    with pytest.raises(PermissionDenied):
        street.remap({"car": "vehicle"})
    tagged = street.tag_samples(None, add=["seen"])
    assert {s.id for s in vf.open_workspace(gov.ws.path).dataset("street").iter_samples('"seen" in tags')} == apac
    assert tagged.count('"seen" in tags') == len(apac)


def test_quality_use_cases_respect_slices_and_roles(gov: Org, curator) -> None:  # type: ignore[no-untyped-def]
    from viewfinder.services import access_quality as aq

    with pytest.raises(PermissionDenied, match="whole dataset"):
        aq.scan(gov.ws, curator, "street", ["exact_duplicates", "overlapping_annotations"])
    aq.scan(gov.ws, SYSTEM, "street", ["image_problems"], {"image_problems": {"dark_max": 0.98, "bright_min": 0.99}})
    everything = aq.findings(gov.ws, SYSTEM, "street", kind="dark")
    apac = _ids_by_region(gov)["APAC"]
    assert {f["sample_id"] for f in everything} == apac | _ids_by_region(gov)["EMEA"]
    assert {f["sample_id"] for f in aq.findings(gov.ws, curator, "street", kind="dark")} == apac
    assert len(aq.findings(gov.ws, curator, "street", kind="dark", limit=2)) == 2

    with pytest.raises(PermissionDenied, match="whole dataset"):
        aq.run_checks(gov.ws, curator, "street", pixels=False)
    report = aq.run_checks(gov.ws, SYSTEM, "street", pixels=False)
    full = aq.latest_report(gov.ws, SYSTEM, "street")
    assert full is not None and full["id"] == report.id and "checks" in full
    assert aq.latest_report(gov.ws, curator, "street") == {
        "id": report.id, "dataset": "street", "version": full["version"], "suite": full["suite"],
        "created_at": full["created_at"], "passed": report.passed, "counts": report.counts,
        "sliced": True}

    viewer = gov.user("vic", "viewer", ("project", "peds-eu"))
    with pytest.raises(PermissionDenied, match="dataset.release"):
        aq.release(gov.ws, viewer, "street", "v1", force=True, reason="demo")
    with pytest.raises(DatasetNotFound):
        aq.similar(gov.ws, viewer, "loose", "whatever")
    aq.release(gov.ws, SYSTEM, "street", "v1", force=True, reason="known issues, tracked", pixels=False)
    events = [e for e in audit.query(gov.ws) if e.action.startswith("dataset.")]
    assert [e.action for e in events][-3:] == ["dataset.scan", "dataset.check", "dataset.release"]
    assert events[-1].details["reason"] == "known issues, tracked"
