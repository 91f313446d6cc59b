// The version history graph (SVG): one lane per branch, a node per version, edges to
// parents (merges have two), branch and tag names beside the versions they point at.

import { pageData } from "./overlay.js";

const NS = "http://www.w3.org/2000/svg";
const ROW = 26, LANE = 18, LEFT = 14, TOP = 14, R = 5;

function el(name, attrs, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Lane per version: a version sits in the lane of the first branch (main first) whose
 * first-parent chain reaches it. */
function lanes(versions, branches) {
  const byId = new Map(versions.map((v) => [v.id, v]));
  const lane = new Map();
  branches.forEach((b, i) => {
    let id = b.head;
    while (id && byId.has(id) && !lane.has(id)) {
      lane.set(id, i);
      id = (byId.get(id).parents || [])[0];
    }
  });
  for (const v of versions) if (!lane.has(v.id)) lane.set(v.id, branches.length);
  return lane;
}

const data = pageData();
const root = document.getElementById("history-graph");
if (data && root) {
  const versions = data.versions;               // newest first
  const row = new Map(versions.map((v, i) => [v.id, i]));
  const lane = lanes(versions, data.branches);
  const nLanes = Math.max(1, ...lane.values()) + 1;
  const textX = LEFT + nLanes * LANE + 8;
  const width = Math.max(600, root.clientWidth - 2);
  const height = TOP * 2 + Math.max(0, versions.length - 1) * ROW;
  const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
                          "aria-label": `${versions.length} versions` });
  const x = (id) => LEFT + lane.get(id) * LANE;
  const y = (id) => TOP + row.get(id) * ROW;
  for (const v of versions) {
    for (const p of v.parents || []) {
      if (!row.has(p)) continue;
      const [x1, y1, x2, y2] = [x(v.id), y(v.id), x(p), y(p)];
      const d = x1 === x2 ? `M${x1},${y1} L${x2},${y2}`
        : `M${x1},${y1} C${x1},${y1 + ROW * 0.8} ${x2},${y2 - ROW * 0.8} ${x2},${y2}`;
      svg.append(el("path", { d, class: "edge" }));
    }
  }
  for (const v of versions) {
    const g = el("g", { class: "version", "data-id": v.id });
    const color = `var(--class-${lane.get(v.id) % 20})`;
    const circle = el("circle", { cx: x(v.id), cy: y(v.id), r: R, class: "node" });
    circle.style.fill = color;
    g.append(circle);
    const link = el("a", { href: `/datasets/${encodeURIComponent(data.dataset)}?ref=${encodeURIComponent(v.id)}` });
    const refs = (v.refs || []).length ? ` [${v.refs.join(", ")}]` : "";
    link.append(el("text", { x: textX, y: y(v.id) + 4 }, `${v.id.slice(0, 12)}${refs}  ${v.message}`));
    g.append(link);
    svg.append(g);
  }
  root.append(svg);
  root.dataset.nodes = String(versions.length);
}
