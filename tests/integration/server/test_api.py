"""API journeys a user of the team server goes through, on every storage backend:
sign in, browse, filter, page, look at a sample and its history, thumbnails (rendered
once), images (the stored bytes), an export job downloaded as a zip, and the audit log
showing all of it. Then several server instances sharing one catalog, and the real
``viewfinder serve`` with two worker processes."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import BACKENDS, make_workspace
from tests.integration.server.conftest import (
    PASSWORD,
    Demo,
    build_demo,
    make_app,
    sign_in,
    username,
)
from viewfinder.storage.workspace import open_workspace


@pytest.fixture(params=BACKENDS)
def backend_demo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Demo]:
    """The demo workspace on each storage backend in turn."""
    with open_workspace(make_workspace(tmp_path, request.param).path) as ws:
        yield build_demo(ws, tmp_path)


def _wait_for(client: TestClient, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        time.sleep(0.1)


def test_browse_filter_detail_thumbnail_image_export_audit(backend_demo: Demo) -> None:
    demo = backend_demo
    with TestClient(make_app(demo.ws_path)) as c:
        assert c.get("/api/v1/me").status_code == 401
        sign_in(c, "head_of_dataops")
        me = c.get("/api/v1/me").json()
        assert me["username"] == username("head_of_dataops")
        assert {"role": "head_of_dataops", "scope_kind": "org", "scope_name": "acme",
                "slice": None} in me["roles"]

        datasets = c.get("/api/v1/datasets").json()
        assert [(d["name"], d["samples"], d["project"]) for d in datasets] == [("street", 12, "streets")]

        # filter and page through the matches
        f = 'label.class == "car" and metadata.region == "APAC"'
        url = f"/api/v1/datasets/{demo.dataset}/samples"
        seen, offset = [], 0
        while offset is not None:
            page = c.get(url, params={"filter": f, "limit": 2, "offset": offset}).json()
            assert len(page["samples"]) <= 2
            seen.extend(page["samples"])
            offset = page["next_offset"]
        assert seen and all(s["metadata"]["region"] == "APAC" for s in seen)
        assert all(any(lab["class_name"] == "car" for lab in s["labels"]) for s in seen)
        assert len({s["id"] for s in seen}) == len(seen)
        count = c.get(f"/api/v1/datasets/{demo.dataset}/stats", params={"filter": f}).json()["samples"]
        assert count == len(seen)
        box = seen[0]["labels"][0]
        assert box["kind"] == "box" and box["w"] > 0 and box["h"] > 0

        bad = c.get(url, params={"filter": 'label.class == "car" and'})
        assert bad.status_code == 400
        assert bad.json()["error"]["type"] == "FilterSyntaxError" and bad.json()["error"]["column"] > 1

        # tag a sample, then its detail shows the edit in its history
        sid = seen[0]["id"]
        r = c.post(f"/api/v1/datasets/{demo.dataset}/samples/tags",
                   json={"ref": "main", "sample_ids": [sid], "add": ["reviewed"]})
        assert r.status_code == 200 and r.json()["created"]
        detail = c.get(f"/api/v1/datasets/{demo.dataset}/samples/{sid}").json()
        assert "reviewed" in detail["tags"]
        assert [h["sample"] for h in detail["history"]] == ["added", "changed"]
        versions = c.get(f"/api/v1/datasets/{demo.dataset}/versions").json()
        assert len(versions) == 3 and "main" in versions[0]["refs"]

        # the image is the stored blob, byte for byte
        img = c.get(f"/api/v1/datasets/{demo.dataset}/samples/{sid}/image")
        assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
        with open_workspace(demo.ws_path) as ws:
            assert img.content == ws.blobs.read(detail["content_hash"])
        assert hashlib.sha256(img.content).hexdigest() == detail["content_hash"]

        # thumbnails: rendered on the first request only, then served from the cache
        thumb_url = seen[0]["thumbnail"]
        assert thumb_url.endswith(f"?ref={page['version']}")  # pinned: cacheable for good
        first = c.get(thumb_url, params={"size": 128})
        second = c.get(thumb_url, params={"size": 128})
        assert (first.headers["x-thumbnail-cache"], second.headers["x-thumbnail-cache"]) == ("miss", "hit")
        assert first.content == second.content
        from PIL import Image

        im = Image.open(io.BytesIO(first.content))
        assert im.format == "JPEG" and max(im.size) == 128
        cached = list((demo.ws_path / "cache" / "thumbnails" / "128").rglob("*.jpg"))
        assert [p.stem for p in cached] == [detail["content_hash"]]
        again = c.get(thumb_url, params={"size": 128}, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and not again.content

        # export as a background job, then download the archive
        r = c.post(f"/api/v1/datasets/{demo.dataset}/exports",
                   json={"ref": "main", "format": "yolo", "filter": 'metadata.region == "APAC"'})
        assert r.status_code == 202 and r.json()["status"] in ("queued", "running", "succeeded")
        job = _wait_for(c, r.json()["id"])
        assert job["status"] == "succeeded", job["error"]
        assert job["result"]["samples"] == 6 and job["progress"]["stage"] == "done"
        dl = c.get(f"/api/v1/jobs/{job['id']}/download")
        assert dl.status_code == 200 and dl.headers["content-type"] == "application/zip"
        names = zipfile.ZipFile(io.BytesIO(dl.content)).namelist()
        assert sum(n.endswith(".jpg") for n in names) == 6
        assert any(n.endswith(".txt") for n in names)
        assert hashlib.sha256(dl.content).hexdigest() == job["result"]["archive"]

        bad = c.post(f"/api/v1/datasets/{demo.dataset}/exports", json={"ref": "main", "format": "nope"})
        assert bad.status_code == 404 and bad.json()["error"]["type"] == "FormatNotFound"

        # the audit log shows the session's work, and its chain holds
        events = c.get("/api/v1/admin/audit", params={"actor": username("head_of_dataops")}).json()
        actions = [e["action"] for e in events]
        for action in ("auth.login", "dataset.tag_samples", "dataset.export", "dataset.download"):
            assert action in actions, actions
        download = next(e for e in events if e["action"] == "dataset.download")
        assert download["details"]["job"] == job["id"] and download["ip"]
        assert c.get("/api/v1/admin/audit/verify").json()["ok"] is True
        jsonl = c.get("/api/v1/admin/audit/export", params={"action": "dataset."})
        assert jsonl.status_code == 200
        lines = jsonl.text.splitlines()
        assert len(lines) >= 3 and all(line.startswith("{") for line in lines)

        assert c.post("/api/v1/auth/logout").status_code == 204
        assert c.get("/api/v1/me").status_code == 401


@pytest.mark.parametrize("backend", ["sqlite-local", "postgres-local"])
def test_two_server_instances_share_sessions_and_jobs(backend: str, tmp_path: Path) -> None:
    """Nothing that matters lives in one process: a session made by one instance works on
    the other, a job started on one is seen and downloaded from the other, and signing out
    on one ends the session everywhere."""
    with open_workspace(make_workspace(tmp_path, backend).path) as ws:
        demo = build_demo(ws, tmp_path)
    a, b = make_app(demo.ws_path), make_app(demo.ws_path)
    with TestClient(a) as ca, TestClient(b) as cb:
        sign_in(ca, "data_engineer")
        cb.cookies = ca.cookies
        cb.headers["X-CSRF-Token"] = ca.headers["X-CSRF-Token"]
        assert cb.get("/api/v1/me").json()["username"] == username("data_engineer")
        job = ca.post(f"/api/v1/datasets/{demo.dataset}/exports",
                      json={"ref": "main", "format": "coco"}).json()
        done = _wait_for(cb, job["id"])
        assert done["status"] == "succeeded"
        assert cb.get(f"/api/v1/jobs/{job['id']}/download").status_code == 200
        assert cb.post("/api/v1/auth/logout").status_code == 204
        assert ca.get("/api/v1/me").status_code == 401


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_viewfinder_serve_with_two_worker_processes(demo: Demo) -> None:
    import httpx

    port = _free_port()
    exe = Path(sys.executable).with_name("viewfinder")
    proc = subprocess.Popen([str(exe), "serve", "--workspace", str(demo.ws_path), "--port",
                             str(port), "--workers", "2"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).json() == {"status": "ok"}:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=30) as c:
            r = c.post("/api/v1/auth/login", json={"username": username("viewer"), "password": PASSWORD})
            assert r.status_code == 200
            assert "httponly" in r.headers["set-cookie"].lower()
            assert "samesite=lax" in r.headers["set-cookie"].lower()
            for _ in range(20):  # the session works on whichever worker answers
                page = c.get(f"/api/v1/datasets/{demo.dataset}/samples", params={"limit": 5})
                assert page.status_code == 200 and len(page.json()["samples"]) == 5
            assert c.get("/api/v1/openapi.json").json()["info"]["title"] == "Viewfinder"
            # small answers are not held back by Nagle's algorithm waiting for the client's
            # delayed ACK (~40 ms each, every time, when TCP_NODELAY is off)
            took = []
            for _ in range(21):
                t = time.perf_counter()
                assert c.get("/healthz").status_code == 200
                took.append(time.perf_counter() - t)
            assert sorted(took)[10] < 0.030, f"median small answer took {sorted(took)[10] * 1000:.0f} ms"
    finally:
        proc.terminate()
        proc.wait(30)


def test_findings_and_check_report_respect_the_slice(tmp_path: Path) -> None:
    """A sliced curator sees only the findings on its samples, and of a check report only
    the outcome and counts; an unsliced curator sees everything."""
    from viewfinder.services import checks, scan

    with open_workspace(make_workspace(tmp_path, "sqlite-local").path) as ws:
        demo = build_demo(ws, tmp_path)
        scan.scan(ws, demo.dataset, ["overlapping_annotations"],
                  params={"overlapping_annotations": {"iou_threshold": 0.01}})
        checks.run_checks(ws, demo.dataset, pixels=False)
    app = make_app(demo.ws_path)
    with TestClient(app) as full, TestClient(app) as sliced:
        sign_in(full, "curator")
        sign_in(sliced, "curator_apac")
        url = f"/api/v1/datasets/{demo.dataset}/findings"
        everything = full.get(url).json()["findings"]
        mine = sliced.get(url).json()["findings"]
        regions = {s["id"]: s["metadata"]["region"] for s in full.get(
            f"/api/v1/datasets/{demo.dataset}/samples", params={"limit": 100}).json()["samples"]}
        assert {regions[f["sample_id"]] for f in everything} == {"APAC", "EMEA"}
        assert mine == [f for f in everything if regions[f["sample_id"]] == "APAC"]
        whole = full.get(f"/api/v1/datasets/{demo.dataset}/checks/latest").json()["report"]
        assert whole["checks"]
        part = sliced.get(f"/api/v1/datasets/{demo.dataset}/checks/latest").json()["report"]
        assert part["sliced"] is True and part["passed"] == whole["passed"]
        assert "checks" not in part
