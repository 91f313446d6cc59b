"""Looking at a version: pages, counts and stats, in place and through the query cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from viewfinder.api import Workspace
from viewfinder.services import look
from viewfinder.storage import query_cache

FILTERS = [None, 'split == "train"', 'label.class == "dog" and label.area < 2000',
           'count(label.class == "car") >= 1 and not any(label.class == "person")']


@pytest.fixture
def street(ws: Workspace, coco_source: Path) -> Workspace:
    ws.import_source(coco_source, "street")
    ws.dataset("street").tag_samples('label.class == "dog"', add=["dog"])
    return ws


@pytest.mark.parametrize("flt", FILTERS)
def test_query_cache_answers_exactly_like_the_tables(street: Workspace, flt: str | None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    inner = street._ws
    plain = (look.samples_page(inner, "street", flt, limit=5, offset=1),
             look.count(inner, "street", flt), look.stats(inner, "street", flt or "width > 0"))
    monkeypatch.setattr(query_cache, "MIN_LABELS", 0)
    cached = (look.samples_page(inner, "street", flt, limit=5, offset=1),
              look.count(inner, "street", flt), look.stats(inner, "street", flt or "width > 0"))
    assert list(inner.path.joinpath("cache", "query").rglob("*.duckdb"))
    assert cached == plain


def test_page_has_labels_with_geometry_and_metadata(street: Workspace) -> None:
    page = look.samples_page(street._ws, "street", '"dog" in tags', limit=3)
    assert page and all("dog" in s["tags"] for s in page)
    assert all(any(lab["class_name"] == "dog" for lab in s["labels"]) for s in page)
    lab = page[0]["labels"][0]
    assert {"x", "y", "w", "h", "class_name", "attributes"} <= set(lab) and lab["w"] > 0


def test_unfiltered_stats_come_from_the_version_summary(street: Workspace) -> None:
    s = look.stats(street._ws, "street")
    f = look.stats(street._ws, "street", "width > 0")
    assert s["classes"] == f["classes"] and s["splits"] == f["splits"]
    assert s["box_sizes"]["buckets"] == f["box_sizes"]["buckets"]


def test_later_pages_of_a_filter_are_slices_of_one_match_and_equal_a_fresh_scan(
        street: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scrolling a grid: every page under one filter (and the count) equals what the
    tables say, though the filter ran once; findings filters are never kept."""
    inner = street._ws
    flt = 'label.class == "car" or split == "val"'
    n = look.count(inner, "street", flt)
    plain = [look.samples_page(inner, "street", flt, limit=3, offset=o) for o in range(0, n + 3, 3)]
    monkeypatch.setattr(query_cache, "MIN_LABELS", 0)
    runs = []
    real = look.VersionReader.query

    def counting(self, sql, params=None):  # type: ignore[no-untyped-def]
        runs.append(sql)
        return real(self, sql, params)

    monkeypatch.setattr(look.VersionReader, "query", counting)
    cached = [look.samples_page(inner, "street", flt, limit=3, offset=o) for o in range(0, n + 3, 3)]
    assert cached == plain and cached[-1] == [] and look.count(inner, "street", flt) == n
    assert len(runs) == 1                                   # one filter run for all pages
    runs.clear()
    look.samples_page(inner, "street", 'finding.kind == "duplicate"', limit=3)
    look.samples_page(inner, "street", 'finding.kind == "duplicate"', limit=3, offset=3)
    assert len(runs) == 2                                   # findings change: not kept


def test_concurrent_first_queries_build_the_query_cache_once(street: Workspace,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Server workers asked for a new version at once: one builds, the others wait and
    read its copy (a build is tens of seconds of all cores at scale)."""
    import threading

    monkeypatch.setattr(query_cache, "MIN_LABELS", 0)
    builds = []
    real = query_cache._build

    def counting(*args):  # type: ignore[no-untyped-def]
        builds.append(threading.get_ident())
        return real(*args)

    monkeypatch.setattr(query_cache, "_build", counting)
    inner = street._ws
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(look.count(inner, "street", 'split == "train"')))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len(set(counts)) == 1 and len(counts) == 4


def test_a_server_builds_branch_heads_query_caches_ahead(street: Workspace,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The first curator to open a new version at scale does not wait for its cache."""
    from viewfinder.server.warmup import CacheWarmer

    monkeypatch.setattr(query_cache, "MIN_LABELS", 0)
    inner = street._ws
    from viewfinder.services import versions as vs

    vs.branch(inner, "street", "fix")                       # same head: built once
    warmer = CacheWarmer(inner)
    built = warmer.warm_once()
    head = inner.catalog.get_ref(inner.catalog.get_dataset("street").id, "main")
    assert head is not None and built == [head.version_id]
    assert list(inner.path.joinpath("cache", "query").rglob("*.duckdb"))
    assert warmer.warm_once() == []                         # nothing left to build
    warmer.start()
    warmer.stop()
