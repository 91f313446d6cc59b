// Sample detail: the full image with its labels drawn over it, zoom (buttons, ctrl/⌘ +
// wheel), and labels shown or hidden per class.

import { drawLabels, pageData } from "./overlay.js";

const data = pageData();
const stage = document.getElementById("stage");
const frame = document.getElementById("frame");
const img = document.getElementById("sample-image");
const canvas = document.getElementById("sample-overlay");
const hidden = new Set();
let zoom = 1;

function fitZoom() {
  const w = stage.clientWidth - 16, h = stage.clientHeight - 16;
  return Math.min(w / data.width, h / data.height, 4);
}

function apply(z) {
  zoom = Math.min(16, Math.max(0.05, z));
  const w = Math.round(data.width * zoom), h = Math.round(data.height * zoom);
  frame.style.width = `${w}px`;
  frame.style.height = `${h}px`;
  for (const el of [img, canvas]) { el.style.width = `${w}px`; el.style.height = `${h}px`; }
  document.getElementById("zoom-level").textContent = `${Math.round(zoom * 100)}%`;
  redraw();
}

function redraw() {
  drawLabels(canvas, data.labels, { width: data.width, height: data.height,
    classIndex: data.class_index, hidden, fit: "fill" });
}

if (data && stage) {
  document.getElementById("zoom-in").addEventListener("click", () => apply(zoom * 1.25));
  document.getElementById("zoom-out").addEventListener("click", () => apply(zoom / 1.25));
  document.getElementById("zoom-fit").addEventListener("click", () => apply(fitZoom()));
  document.getElementById("zoom-1").addEventListener("click", () => apply(1));
  stage.addEventListener("wheel", (event) => {
    if (!event.ctrlKey && !event.metaKey) return;
    event.preventDefault();
    apply(zoom * (event.deltaY < 0 ? 1.1 : 1 / 1.1));
  }, { passive: false });
  for (const box of document.querySelectorAll("#class-toggles input[data-class]")) {
    box.addEventListener("change", () => {
      if (box.checked) hidden.delete(box.dataset.class); else hidden.add(box.dataset.class);
      redraw();
    });
  }
  window.addEventListener("resize", () => redraw());
  apply(fitZoom());
}
