"""The web UI in a real browser: Playwright driving Debian's Chromium against a real
uvicorn server on a free port, through the journeys curators and the head of DataOps
make every day. Screenshots of each step go to ``tests-artifacts/screenshots/``.

Every page is also watched for what a user would notice: a JavaScript error, a
Content-Security-Policy violation (all scripts are modules from ``/static``), or an
``alert()`` from the XSS payloads the demo dataset carries in a class name and in
metadata.

Chromium missing: skipped locally, a failure in CI (``VIEWFINDER_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.server.conftest import PASSWORD, XSS, Demo, make_app, username

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE = os.environ.get("VIEWFINDER_REQUIRE_SERVICES") == "1"
SCREENSHOTS = Path(__file__).resolve().parents[3] / "tests-artifacts" / "screenshots"
TIMEOUT_MS = 15_000

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def base_url(demo: Demo) -> Iterator[str]:
    """A real uvicorn server over the demo workspace, in a thread, on a free port."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(make_app(demo.ws_path), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="ui-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the test server stopped while starting (see the log above)"
        assert time.monotonic() < deadline, "the test server did not start within 30 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's), driven by Playwright."""
    if not CHROMIUM.exists():
        if REQUIRE:
            pytest.fail(f"Chromium is required (VIEWFINDER_REQUIRE_SERVICES=1) but {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


class Watched:
    """A page plus what went wrong on it (JS errors, CSP violations, dialogs)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        # pages answer 400/401/404 on purpose (filter errors, sign-in, hidden datasets);
        # Chromium logs those documents as console errors: images and modules must not fail
        page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}")
                if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
        page.on("response", lambda r: self.problems.append(f"{r.status} for {r.url}")
                if r.status >= 400 and r.request.resource_type in ("image", "script", "stylesheet")
                else None)

        def on_dialog(d: Any) -> None:
            self.problems.append(f"a dialog opened (script ran): {d.message}")
            d.dismiss()

        page.on("dialog", on_dialog)

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def assert_clean(self) -> None:
        assert not self.problems, "\n".join(self.problems)


def _open(browser: Any, base_url: str, who: str) -> Watched:
    """A fresh browser context signed in as ``who`` through the sign-in form."""
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900},
                                  accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    w = Watched(context.new_page())
    w.page.goto("/")
    w.page.fill("input[name=username]", username(who))
    w.page.fill("input[name=password]", PASSWORD)
    w.page.click("button[type=submit]")
    w.page.wait_for_selector("header .who")
    return w


def _expected_count(demo: Demo, spec: str, filter: str | None) -> int:
    from viewfinder.services import look
    from viewfinder.storage.workspace import open_workspace

    with open_workspace(demo.ws_path) as ws:
        return look.count(ws, spec, filter)


def _boxes_of(demo: Demo, sample_id: str) -> list[str]:
    from viewfinder.services import look
    from viewfinder.storage.workspace import open_workspace

    with open_workspace(demo.ws_path) as ws:
        rows = look.samples_page(ws, demo.dataset, f'id == "{sample_id}"', limit=1)
    return [lab["class_name"] for lab in rows[0]["labels"] if lab["kind"] == "box"]


def expect(locator: Any) -> Any:
    """Playwright's retrying assertions (they poll without ``eval``, which the pages'
    Content-Security-Policy forbids)."""
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


def _branch_and_tag(demo: Demo) -> None:
    from viewfinder.services import edit
    from viewfinder.services import versions as vs
    from viewfinder.storage.workspace import open_workspace

    with open_workspace(demo.ws_path) as ws:
        first = vs.log(ws, demo.dataset)[-2].id  # the first import
        vs.tag(ws, f"{demo.dataset}@{first}", "v1")
        vs.branch(ws, demo.dataset, "relabel", from_ref=first)
        edit.tag_samples(ws, f"{demo.dataset}@relabel", f'id == "{demo.emea_sample}"', add=["side"],
                         author="ci")


def test_sign_in_browse_and_filter(browser: Any, base_url: str, demo: Demo) -> None:
    """Sign in, open the dataset, filter by class with the facet and by typing, and see a
    syntax error with its caret under the right column."""
    w = _open(browser, base_url, "head_of_dataops")
    page = w.page
    assert page.locator("table.datasets").inner_text().count(demo.dataset) == 1
    w.shot("01-datasets")

    page.click(f"table.datasets a:text-is('{demo.dataset}')")
    page.wait_for_selector("#grid .cell[data-id]")
    total = _expected_count(demo, demo.dataset, None)
    expect(page.locator("#grid .cell[data-id]")).to_have_count(total)
    assert page.inner_text("#match-count").startswith(f"{total} samples")
    # the XSS class is listed as text in the sidebar, never run
    assert XSS in page.inner_text("#class-facet")
    # every thumbnail really loads (an image the server refused would stay empty)
    page.wait_for_function("""() => [...document.querySelectorAll('#grid .cell img')]
        .every(i => i.complete && i.naturalWidth > 0)""", timeout=15000)
    w.shot("02-browser")

    page.click("#class-facet a[data-class='car']")
    page.wait_for_load_state()
    cars = _expected_count(demo, demo.dataset, 'label.class == "car"')
    assert 0 < cars < total
    expect(page.locator("#grid .cell[data-id]")).to_have_count(cars)
    assert page.input_value("input[name=filter]") == 'label.class == "car"'
    assert page.inner_text("#match-count").startswith(f"{cars} sample")

    page.fill("input[name=filter]", 'split == "train" and metadata.region == "APAC"')
    page.press("input[name=filter]", "Enter")
    page.wait_for_load_state()
    n = _expected_count(demo, demo.dataset, 'split == "train" and metadata.region == "APAC"')
    expect(page.locator("#grid .cell[data-id]")).to_have_count(n)
    w.shot("03-filtered")

    bad = 'label.class == "car" and label.area >> 5'
    page.fill("input[name=filter]", bad)  # checked while typing, before any submit
    page.wait_for_selector("#filter-error:not([hidden]) .caret")
    caret = page.inner_text("#filter-error .caret")
    column = len(caret) - len(caret.lstrip(" ")) + 1
    assert caret.strip() == "^"
    assert bad[column - 1:].startswith(">"), f"caret at column {column}: {bad[column - 1:]!r}"
    w.shot("04-filter-error")
    page.press("input[name=filter]", "Enter")  # submitted anyway: the page says the same
    page.wait_for_selector("#filter-error .caret")
    assert page.inner_text("#filter-error .expr") == bad
    w.assert_clean()
    page.context.close()


def test_sample_detail_draws_its_boxes(browser: Any, base_url: str, demo: Demo) -> None:
    """The sample page draws one box per box label; hiding a class removes its boxes."""
    w = _open(browser, base_url, "curator")
    page = w.page
    page.goto(f"/datasets/{demo.dataset}")
    page.wait_for_selector("#grid .cell[data-id] canvas[data-boxes]")
    first = page.locator("#grid .cell[data-id]").first
    sample_id = first.get_attribute("data-id")
    classes = _boxes_of(demo, sample_id)
    assert classes
    assert first.locator("canvas").get_attribute("data-boxes") == str(len(classes))
    first.locator("a.thumb").click()
    page.wait_for_selector("#sample-overlay[data-boxes]")
    assert page.get_attribute("#sample-overlay", "data-boxes") == str(len(classes))
    # the overlay really has colored pixels where the boxes are
    painted = page.evaluate("""() => { const c = document.getElementById('sample-overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
    assert painted > 0
    w.shot("05-sample")

    hidden = classes[0]
    page.locator(f"#class-toggles input[data-class={json.dumps(hidden)}]").uncheck()
    assert page.get_attribute("#sample-overlay", "data-boxes") == str(len(classes) - classes.count(hidden))
    page.click("#zoom-in")
    assert page.inner_text("#zoom-level").endswith("%")
    w.shot("06-sample-class-hidden")
    w.assert_clean()
    page.context.close()


def test_tag_samples_then_diff_the_new_version(browser: Any, base_url: str, demo: Demo) -> None:
    """Tag two samples in the grid (a new version), then open the diff with its parent:
    two changed samples, shown before and after with their boxes."""
    w = _open(browser, base_url, "data_engineer")
    page = w.page
    page.goto(f"/datasets/{demo.dataset}")
    page.wait_for_selector("#grid .cell[data-id] input.pick")
    cells = page.locator("#grid .cell[data-id]")
    picked = [cells.nth(i).get_attribute("data-id") for i in (0, 1)]
    for i in (0, 1):
        cells.nth(i).locator("input.pick").check()
    assert page.inner_text("#selected-count") == "2 selected"
    page.fill("#tag-form input[name=tag]", "needs-review")
    page.click("#tag-form button[value=add]")
    page.wait_for_selector("#grid-status.ok")
    w.shot("07-tagged")
    page.wait_for_url(re.compile(r".*ref=main.*"))
    page.goto(f"/datasets/{demo.dataset}?filter=" + quote('"needs-review" in tags'))
    expect(page.locator("#grid .cell[data-id]")).to_have_count(2)

    # a side branch with a commit of its own, and a tag, as a data engineer makes them
    _branch_and_tag(demo)
    page.goto(f"/datasets/{demo.dataset}/versions")
    page.wait_for_selector("#history-graph svg g.version")
    nodes = page.locator("#history-graph g.version")
    assert nodes.count() == page.locator("#versions tbody tr").count() >= 4
    lanes = {nodes.nth(i).locator("circle").get_attribute("cx") for i in range(nodes.count())}
    assert len(lanes) == 2  # main and the side branch
    graph_text = page.inner_text("#history-graph")
    assert "[relabel]" in graph_text and "v1" in graph_text
    w.shot("08-versions")
    main_row = page.locator("#versions tbody tr", has=page.locator(".badge.ref:text-is('main')"))
    main_row.locator("a:text('diff with parent')").click()
    page.wait_for_selector("#diff-counts")
    assert page.inner_text("[data-table=samples] .changed") == "~2"
    pairs = page.locator("#diff-pairs .pair")
    assert sorted(pairs.nth(i).get_attribute("data-sample") for i in range(pairs.count())) == sorted(picked)
    for i in range(pairs.count()):
        sid = pairs.nth(i).get_attribute("data-sample")
        n = len(_boxes_of(demo, sid))
        for side in ("before", "after"):
            canvas = pairs.nth(i).locator(f".view[data-side={side}] canvas")
            assert canvas.get_attribute("data-boxes") == str(n)
    w.shot("09-diff")

    # the tagged sample's history: the import, then the tagging (newest first)
    page.goto(f"/datasets/{demo.dataset}/samples/{picked[0]}")
    history = page.locator("#history tbody tr")
    expect(history).to_have_count(2)
    assert "needs-review" in history.nth(0).inner_text() and "sample changed" in history.nth(0).inner_text()
    assert "first batch" in history.nth(1).inner_text()
    assert "needs-review" in page.inner_text("#sample-tags")
    w.assert_clean()
    page.context.close()


def test_change_a_role_and_see_it_in_the_audit_log(browser: Any, base_url: str, demo: Demo) -> None:
    """The head of DataOps grants a role in the admin pages; the audit log shows it, the
    filter finds it, and the JSON Lines export holds it."""
    w = _open(browser, base_url, "head_of_dataops")
    page = w.page
    page.click("header nav a:text('Admin')")
    page.click(".tabs a:text('Role bindings')")
    form = page.locator("#grant-form")
    form.locator("select[name=username]").select_option(username("viewer"))
    form.locator("select[name=role]").select_option("curator")
    form.locator("select[name=scope]").select_option("org:acme")
    form.locator("input[name=slice]").fill('metadata.region == "EMEA"')
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#flash.ok")
    row = page.locator(f"#bindings tr[data-user={username('viewer')}][data-role=curator]")
    assert 'metadata.region == "EMEA"' in row.inner_text()
    w.shot("10-role-granted")

    page.click(".tabs a:text('Audit log')")
    newest = page.locator("#audit tbody tr").first
    assert newest.get_attribute("data-action") == "role.grant"
    assert username("viewer") in newest.inner_text() and username("head_of_dataops") in newest.inner_text()
    page.fill("#audit-filter input[name=action]", "role.grant")
    page.click("#audit-filter button[type=submit]")
    actions = {r.get_attribute("data-action") for r in page.locator("#audit tbody tr").all()}
    assert actions == {"role.grant"}
    w.shot("11-audit")
    with page.expect_download() as dl:
        page.click("#audit-export")
    lines = [json.loads(x) for x in Path(dl.value.path()).read_text().splitlines()]
    assert lines and {e["action"] for e in lines} == {"role.grant"}
    assert any(e["resource_id"] == username("viewer") and e["actor"] == username("head_of_dataops")
               for e in lines)
    w.assert_clean()
    page.context.close()


def test_labeler_sees_an_empty_task_queue(browser: Any, base_url: str) -> None:
    w = _open(browser, base_url, "labeler")
    assert w.page.inner_text("#no-tasks") == "No tasks assigned to you."
    assert w.page.locator("table.datasets").count() == 0
    w.shot("12-labeler-queue")
    w.page.goto("/datasets/street")
    assert w.page.locator("h1").inner_text() == "Not found"
    w.page.click("#logout-form button")
    w.page.wait_for_url("**/login")
    w.page.goto("/")
    assert w.page.locator("input[name=password]").count() == 1  # signed out: the sign-in form
    w.assert_clean()
    w.page.context.close()


def test_grid_is_virtualized(browser: Any, base_url: str, demo: Demo, tmp_path: Path) -> None:
    """1,500 samples: the grid keeps only the rows in view in the page, and scrolling to
    the end fetches and shows the last samples."""
    from viewfinder.services import look
    from viewfinder.services.ingest import import_source
    from viewfinder.storage.workspace import open_workspace
    from viewfinder.synthetic import make_coco

    n = 1500
    src = make_coco(tmp_path / "crowd", n_images=n, size=(32, 24), seed=5)
    with open_workspace(demo.ws_path) as ws:
        import_source(ws, src, "crowd", format="coco", author="ci")
        keys = [r["key"] for r in look.samples_page(ws, "crowd", None, limit=n + 1, with_labels=False)]
    assert len(keys) == n  # in the grid's order

    w = _open(browser, base_url, "head_of_dataops")
    page = w.page
    page.goto("/datasets/crowd")
    page.wait_for_selector("#grid .cell[data-id]")
    assert page.inner_text("#match-count").startswith(f"{n:,} samples")
    rendered = page.locator("#grid .cell").count()
    assert 0 < rendered < 120, rendered
    page.eval_on_selector("#grid", "el => { el.scrollTop = el.scrollHeight; }")
    expect(page.locator(f"#grid .cell[data-key='{keys[-1]}']")).to_have_count(1)
    assert page.locator("#grid .cell").count() < 120
    assert page.locator(f"#grid .cell[data-key='{keys[0]}']").count() == 0  # scrolled out
    w.shot("13-virtualized-grid-end")
    w.assert_clean()
    page.context.close()


def test_overlay_draws_masks_and_polygons_where_they_are(browser: Any, base_url: str) -> None:
    """The overlay module decodes COCO RLE as pycocotools encodes it and paints exactly
    the mask's pixels; a polygon is filled inside its ring only."""
    import numpy as np
    from pycocotools import mask as mask_utils

    h, w = 30, 40
    m = np.zeros((h, w), dtype=np.uint8)
    m[5:20, 8:30] = 1
    m[22:27, 1:4] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    rle = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
    page = browser.new_page(viewport={"width": 400, "height": 300}, device_scale_factor=1)
    page.goto(f"{base_url}/login")  # any page of the site: the module loads from /static
    result = page.evaluate("""async ([rle, w, h]) => {
        const o = await import('/static/overlay.js');
        const canvas = document.createElement('canvas');
        canvas.style.width = w + 'px'; canvas.style.height = h + 'px';
        document.body.append(canvas);
        const count = (c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; };
        const mask = o.drawLabels(canvas, [{kind: 'mask', class_name: 'a', mask: rle}],
                                  {width: w, height: h, fit: 'fill'});
        const painted = count(canvas);
        const inside = canvas.getContext('2d').getImageData(10, 10, 1, 1).data[3];
        const outside = canvas.getContext('2d').getImageData(35, 25, 1, 1).data[3];
        const poly = o.drawLabels(canvas, [{kind: 'polygon', class_name: 'a',
                                            polygon: [[10, 5, 30, 5, 30, 25, 10, 25]]}],
                                  {width: w, height: h, fit: 'fill'});
        const polyInside = canvas.getContext('2d').getImageData(20, 15, 1, 1).data[3];
        const polyOutside = canvas.getContext('2d').getImageData(3, 3, 1, 1).data[3];
        return {runs: o.decodeCounts(rle.counts), mask, painted, inside, outside, poly,
                polyInside, polyOutside};
    }""", [rle, w, h])
    from viewfinder.formats._rle import counts_from_string

    assert result["runs"] == counts_from_string(rle["counts"])
    assert result["mask"]["masks"] == 1 and result["painted"] == int(m.sum())
    assert result["inside"] > 0 and result["outside"] == 0
    assert result["poly"]["polygons"] == 1
    assert result["polyInside"] > 0 and result["polyOutside"] == 0
    page.close()


def test_export_from_the_browser_and_download_it_from_the_jobs_page(
        browser: Any, base_url: str, demo: Demo) -> None:
    """A curator narrowed to APAC filters the grid, exports what it shows with the form,
    follows the job on the Jobs page (updated in place, no reload) and downloads the
    archive: APAC cars only."""
    import io
    import zipfile

    w = _open(browser, base_url, "curator_apac")
    page = w.page
    page.goto(f"/datasets/{demo.dataset}")
    page.click("#class-facet a[data-class='car']")
    page.wait_for_load_state()
    form = page.locator("#export-form")
    assert form.locator("input[name=filter]").input_value() == 'label.class == "car"'
    assert form.locator("input[name=ref]").input_value() == json.loads(
        page.inner_text("#vf-data"))["version"]  # the version the page shows
    form.locator("select[name=format]").select_option("yolo")
    w.shot("14-export-form")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/jobs")
    assert "Exporting street" in page.inner_text("#flash")
    assert page.locator("header nav a.active").inner_text() == "Jobs"
    page.evaluate("() => { window.vfSamePage = true; }")  # gone if the page reloads
    row = page.locator("#jobs tbody tr").first
    expect(row).to_have_attribute("data-status", "succeeded", timeout=60_000)
    assert page.evaluate("() => window.vfSamePage === true")  # updated in place by jobs.js
    assert "yolo" in row.locator("td.kind").inner_text()
    w.shot("15-jobs")
    with page.expect_download() as dl:
        row.locator("td.download a").click()
    with zipfile.ZipFile(io.BytesIO(Path(dl.value.path()).read_bytes())) as z:
        images = [n for n in z.namelist() if n.lower().endswith(".jpg")]
    expected = _expected_count(demo, demo.dataset, 'metadata.region == "APAC" and label.class == "car"')
    assert 0 < len(images) == expected < _expected_count(demo, demo.dataset, 'label.class == "car"')
    w.assert_clean()
    page.context.close()
