// The dataset browser's image grid: virtualized (only the rows in view, and a couple
// around them, exist in the DOM), pages of samples fetched from the REST API as they
// scroll into view, label overlays drawn over each thumbnail, and bulk tag/untag of the
// selected samples.
//
// Browsers cap an element's height (about 16M px in Chromium), so past MAX_HEIGHT the
// scroll range is compressed: the scroll position maps linearly onto the full list and
// the rendered rows are shifted to match.

import { api, drawLabels, pageData } from "./overlay.js";

const CELL = 184;         // cell edge in CSS pixels (thumbnail area + caption)
const GAP = 8;
const CAPTION = 18;
const OVERSCAN_ROWS = 2;
const MAX_HEIGHT = 8_000_000;

class Grid {
  constructor(root, data) {
    this.root = root;
    this.spacer = root.querySelector(".spacer");
    this.data = data;
    this.pageSize = data.page_size;
    this.pages = new Map();        // page number -> Promise<samples[]> | samples[]
    this.cells = new Map();        // sample index -> element
    this.selected = new Set();
    this.columns = 1;
    this.shift = 0;
    this.frame = 0;
    root.addEventListener("scroll", () => this.schedule());
    new ResizeObserver(() => this.schedule()).observe(root);
    this.schedule();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.layout(); });
  }

  layout() {
    const width = this.root.clientWidth - GAP;
    const columns = Math.max(1, Math.floor(width / (CELL + GAP)));
    if (columns !== this.columns) {
      this.columns = columns;
      for (const el of this.cells.values()) el.remove();
      this.cells.clear();
    }
    const rows = Math.ceil(this.data.total / columns);
    const full = rows * (CELL + GAP) + GAP;
    const shown = Math.min(full, MAX_HEIGHT);
    this.spacer.style.height = `${shown}px`;
    const view = this.root.clientHeight;
    const ratio = shown > view ? Math.max(1, (full - view) / (shown - view)) : 1;
    const top = this.root.scrollTop * ratio;           // position in the full list
    this.shift = top - this.root.scrollTop;
    const first = Math.max(0, Math.floor(top / (CELL + GAP)) - OVERSCAN_ROWS);
    const last = Math.min(rows, Math.ceil((top + view) / (CELL + GAP)) + OVERSCAN_ROWS);
    const start = first * columns, end = Math.min(this.data.total, last * columns);
    for (const [i, el] of this.cells) {
      if (i < start || i >= end) { el.remove(); this.cells.delete(i); } else this.position(el, i);
    }
    for (let i = start; i < end; i++) {
      if (!this.cells.has(i)) this.placeCell(i);
    }
    this.root.dataset.rendered = String(this.cells.size);
  }

  position(el, i) {
    const row = Math.floor(i / this.columns), col = i % this.columns;
    el.style.left = `${GAP + col * (CELL + GAP)}px`;
    el.style.top = `${GAP + row * (CELL + GAP) - this.shift}px`;
  }

  placeCell(i) {
    const el = document.createElement("div");
    el.className = "cell";
    this.position(el, i);
    el.style.width = `${CELL}px`;
    el.style.height = `${CELL}px`;
    this.spacer.appendChild(el);
    this.cells.set(i, el);
    const page = Math.floor(i / this.pageSize);
    this.page(page).then((samples) => {
      const sample = samples[i - page * this.pageSize];
      if (sample && this.cells.get(i) === el) this.fillCell(el, sample);
    }).catch((err) => this.status(`Could not load samples: ${err.message}`, "error"));
  }

  page(n) {
    if (!this.pages.has(n)) {
      const q = new URLSearchParams({ ref: this.data.version, limit: String(this.pageSize),
                                      offset: String(n * this.pageSize) });
      if (this.data.filter) q.set("filter", this.data.filter);
      const url = `/api/v1/datasets/${encodeURIComponent(this.data.dataset)}/samples?${q}`;
      const p = api(url).then((body) => { this.pages.set(n, body.samples); return body.samples; });
      p.catch(() => this.pages.delete(n));
      this.pages.set(n, p);
    }
    return Promise.resolve(this.pages.get(n));
  }

  fillCell(el, s) {
    el.dataset.id = s.id;
    el.dataset.key = s.key;
    el.classList.toggle("selected", this.selected.has(s.id));
    const link = document.createElement("a");
    link.className = "thumb";
    link.href = `/datasets/${encodeURIComponent(this.data.dataset)}/samples/${encodeURIComponent(s.id)}?ref=${encodeURIComponent(this.data.version)}`;
    link.title = s.key;
    const img = document.createElement("img");
    img.alt = s.key;
    img.decoding = "async";
    img.src = `${s.thumbnail}&size=256`;
    const canvas = document.createElement("canvas");
    canvas.className = "overlay";
    link.append(img, canvas);
    const caption = document.createElement("div");
    caption.className = "caption";
    caption.textContent = `${s.key} · ${s.labels.length}`;
    el.append(link, caption);
    if (this.data.can_tag) {
      const pick = document.createElement("input");
      pick.type = "checkbox";
      pick.className = "pick";
      pick.checked = this.selected.has(s.id);
      pick.setAttribute("aria-label", `select ${s.key}`);
      pick.addEventListener("change", () => {
        if (pick.checked) this.selected.add(s.id); else this.selected.delete(s.id);
        el.classList.toggle("selected", pick.checked);
        this.onSelection();
      });
      el.append(pick);
    }
    // the thumbnail keeps the image's aspect ratio inside the cell: draw with the same fit
    requestAnimationFrame(() => drawLabels(canvas, s.labels, {
      width: s.width, height: s.height, classIndex: this.data.class_index }));
  }

  onSelection() {
    const counter = document.getElementById("selected-count");
    if (counter) counter.textContent = `${this.selected.size} selected`;
  }

  status(message, kind) {
    const box = document.getElementById("grid-status");
    box.textContent = message;
    box.className = `flash ${kind}`;
    box.hidden = false;
  }
}

function setupTagging(grid, data) {
  const form = document.getElementById("tag-form");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const op = event.submitter ? event.submitter.value : "add";
    const tag = form.elements.tag.value.trim();
    if (!tag) return;
    if (grid.selected.size === 0) { grid.status("Select samples first (the box at each image's corner).", "error"); return; }
    const body = { ref: data.ref, sample_ids: [...grid.selected], add: [], remove: [] };
    body[op === "remove" ? "remove" : "add"] = [tag];
    for (const b of form.querySelectorAll("button")) b.disabled = true;
    try {
      await api(`/api/v1/datasets/${encodeURIComponent(data.dataset)}/samples/tags`, { method: "POST", body });
      const verb = op === "remove" ? "Removed" : "Added";
      grid.status(`${verb} tag “${tag}” on ${grid.selected.size} sample(s); a new version was committed on ${data.ref}.`, "ok");
      const q = new URLSearchParams({ ref: data.ref });
      if (data.filter) q.set("filter", data.filter);
      setTimeout(() => { window.location.search = q.toString(); }, 900);
    } catch (err) {
      grid.status(err.message || "Tagging failed", "error");
      for (const b of form.querySelectorAll("button")) b.disabled = false;
    }
  });
}

const root = document.getElementById("grid");
const data = pageData();
if (root && data) {
  const grid = new Grid(root, data);
  setupTagging(grid, data);
}
