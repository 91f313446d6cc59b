"""The image grid's hot path: a thumbnail or image request makes one access check, finds
the sample's content hash in a per-process cache of visible samples (filled by the page
that listed it), and answers with strong HTTP caching. The cache must never widen what a
caller sees: not across slices, not after a role is revoked."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.integration.server.conftest import Demo, username
from viewfinder.governance import roles
from viewfinder.governance.principal import SYSTEM
from viewfinder.storage.workspace import open_workspace

IMMUTABLE = "private, max-age=31536000, immutable"


def test_a_wider_callers_lookups_never_open_the_slice(demo: Demo,
                                                      clients: Callable[[str], TestClient]) -> None:
    """The unsliced curator lists every sample and loads every thumbnail first (filling
    the cache); the sliced curator still gets 404 outside its slice, 200 inside."""
    full = clients("curator").get(f"/api/v1/datasets/{demo.dataset}/samples",
                                  params={"limit": 100}).json()
    by_id = {s["id"]: s for s in full["samples"]}
    for s in full["samples"]:
        assert clients("curator").get(f'{s["thumbnail"]}&size=64').status_code == 200
    sliced = clients("curator_apac")
    for sid in (demo.emea_sample, demo.apac_sample):
        want = 200 if sid == demo.apac_sample else 404
        for url in (f'{by_id[sid]["thumbnail"]}&size=64', by_id[sid]["image"]):
            assert sliced.get(url).status_code == want, url


def test_pinned_urls_are_private_immutable_and_revalidate_by_content_hash(
        demo: Demo, clients: Callable[[str], TestClient]) -> None:
    c = clients("viewer")
    page = c.get(f"/api/v1/datasets/{demo.dataset}/samples", params={"limit": 1}).json()
    s = page["samples"][0]
    url = f'{s["thumbnail"]}&size=128'  # the page's URL, pinned to the version
    thumb = c.get(url)
    assert thumb.status_code == 200
    assert thumb.headers["cache-control"] == IMMUTABLE
    assert thumb.headers["etag"] == f'"{s["content_hash"][:32]}-128"'
    again = c.get(url, headers={"If-None-Match": thumb.headers["etag"]})
    assert again.status_code == 304 and not again.content
    assert again.headers["cache-control"] == IMMUTABLE

    img = c.get(s["image"])
    assert img.status_code == 200 and img.headers["cache-control"] == IMMUTABLE
    assert img.headers["etag"] == f'"{s["content_hash"][:32]}"'
    again = c.get(s["image"], headers={"If-None-Match": img.headers["etag"]})
    assert again.status_code == 304 and not again.content

    # a branch moves: the answer must be revalidated every time
    on_main = c.get(f"/api/v1/datasets/{demo.dataset}/samples/{s['id']}/thumbnail",
                    params={"size": 128})
    assert on_main.status_code == 200 and on_main.headers["cache-control"] == "private, no-cache"
    assert on_main.content == thumb.content


def test_a_revoked_role_is_refused_at_once_even_with_a_warm_cache(
        demo: Demo, clients: Callable[[str], TestClient]) -> None:
    """Every request is decided again; the cache only remembers content hashes."""
    c = clients("data_engineer")
    s = c.get(f"/api/v1/datasets/{demo.dataset}/samples", params={"limit": 1}).json()["samples"][0]
    assert c.get(s["thumbnail"]).status_code == 200
    with open_workspace(demo.ws_path) as ws:
        assert roles.revoke(ws, SYSTEM, username("data_engineer"), "data_engineer",
                            scope_kind="org", scope_name="acme") == 1
    try:
        assert c.get(s["thumbnail"]).status_code == 404
        assert c.get(s["image"]).status_code == 404
    finally:
        with open_workspace(demo.ws_path) as ws:
            roles.grant(ws, SYSTEM, username("data_engineer"), "data_engineer", scope_kind="org",
                        scope_name="acme")
