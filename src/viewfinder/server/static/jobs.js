// The Jobs page: while a job is queued or running, ask GET /api/v1/jobs every few seconds
// and rebuild the table's rows (the same cells as templates/_job_row.html). Text goes in
// with textContent only. Without this module the page still shows the state at load.

import { api, pageData } from "./overlay.js";

const cfg = pageData("vf-jobs");
const table = document.getElementById("jobs");
const live = document.getElementById("jobs-live");
const ACTIVE = new Set(["queued", "running"]);
const BADGE = { succeeded: "pass", failed: "fail", running: "warn", queued: "warn" };

const when = (iso) => (iso ? iso.slice(0, 19).replace("T", " ") : "");
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** Bytes as Jinja's filesizeformat writes them (decimal units), so both agree. */
function size(bytes) {
  if (bytes === 1) return "1 Byte";
  if (bytes < 1000) return `${bytes} Bytes`;
  const units = ["kB", "MB", "GB", "TB", "PB"];
  let i = -1;
  let v = bytes;
  do { v /= 1000; i += 1; } while (v >= 1000 && i < units.length - 1);
  return `${v.toFixed(1)} ${units[i]}`;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

function row(j) {
  const r = j.result || {};
  const p = j.params || {};
  const tr = el("tr", { "data-id": j.id, "data-status": j.status });
  if (cfg.all) tr.append(el("td", { class: "owner" }, j.owner || ""));
  const kind = el("td", { class: "kind" }, j.kind);
  if (p.format) kind.append(" ", el("span", { class: "muted" }, p.format));
  const dataset = el("td", { class: "dataset" });
  if (j.dataset) {
    dataset.append(el("a", { href: `/datasets/${encodeURIComponent(j.dataset)}` }, j.dataset));
    if (p.version) dataset.append(" ", el("span", { class: "mono muted" }, p.version.slice(0, 12)));
  }
  const status = el("td", { class: "status" }, el("span", { class: `badge ${BADGE[j.status] || ""}` }, j.status));
  const progress = el("td", { class: "progress" });
  if (ACTIVE.has(j.status) && j.progress) {
    const { stage, done, total } = j.progress;
    progress.append(el("progress", { max: String(Math.max(total, 1)), value: String(done) }),
                    ` ${stage} ${done}/${total}`);
  } else if (ACTIVE.has(j.status)) {
    progress.append("waiting");
  }
  const details = el("td", { class: "details" });
  if (j.status === "failed") {
    details.append(el("span", { class: "error" }, j.error || ""));
  } else if (j.status === "succeeded" && r.archive) {
    details.append(`${plural(r.samples, "sample")}, ${size(r.archive_bytes || 0)}`);
    if (p.filter) details.append(", filter ", el("code", {}, p.filter));
    details.append(`; kept until ${when(j.expires_at)}`);
  } else if (j.status === "expired") {
    details.append(`archive deleted after ${when(j.expires_at)}; export again`);
  }
  const download = el("td", { class: "download" });
  const mine = !cfg.all || j.owner === cfg.username;
  if (j.status === "succeeded" && j.kind === "export" && r.archive && mine) {
    download.append(el("a", { class: "button", href: `/api/v1/jobs/${encodeURIComponent(j.id)}/download`,
                              download: "" }, "Download"));
  }
  tr.append(kind, dataset, status, progress, el("td", { class: "created" }, when(j.created_at)),
            el("td", { class: "started" }, when(j.started_at)),
            el("td", { class: "finished" }, when(j.finished_at)), details, download);
  return tr;
}

function anyActive() {
  return [...table.querySelectorAll("tbody tr[data-status]")].some((tr) => ACTIVE.has(tr.dataset.status));
}

async function poll() {
  const q = new URLSearchParams({ limit: String(cfg.limit), offset: String(cfg.offset) });
  if (cfg.all) q.set("all", "true");
  try {
    const page = await api(`/api/v1/jobs?${q}`);
    const body = table.querySelector("tbody");
    if (page.jobs.length) body.replaceChildren(...page.jobs.map(row));
  } catch (err) {
    live.textContent = `could not update: ${err.message}`;
    live.hidden = false;
    return; // the page keeps what it shows; Refresh reloads it
  }
  if (anyActive()) {
    setTimeout(poll, cfg.poll_ms);
  } else {
    live.hidden = true;
  }
}

if (cfg && table && anyActive()) {
  live.hidden = false;
  setTimeout(poll, cfg.poll_ms);
}
