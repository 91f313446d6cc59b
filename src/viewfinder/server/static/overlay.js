// Label overlays: boxes, polygons and masks drawn on a <canvas> laid over an image.
//
// Coordinates are the sample's pixel coordinates (COCO conventions: boxes x, y, w, h;
// polygons as rings of flat [x0, y0, x1, y1, ...]; masks as COCO RLE {size: [h, w],
// counts}), scaled to the canvas from the sample's width and height, with the same
// letter-boxing as an <img> with object-fit: contain. Colors come from the CSS palette
// (--class-0 .. --class-19 in app.css), class i of the dataset's class list taking
// color i % 20, so the sidebar swatches and the overlays agree.

const PALETTE_SIZE = 20;
let palette = null;

/** The palette colors, read once from app.css. */
export function paletteColors() {
  if (palette === null) {
    const css = getComputedStyle(document.documentElement);
    palette = [];
    for (let i = 0; i < PALETTE_SIZE; i++) {
      palette.push(css.getPropertyValue(`--class-${i}`).trim() || "#ff00ff");
    }
  }
  return palette;
}

/** The color of a class, by its index in the dataset's class list. */
export function classColor(classIndex, name) {
  const i = Object.prototype.hasOwnProperty.call(classIndex, name) ? classIndex[name] : 0;
  return paletteColors()[i % PALETTE_SIZE];
}

/** Decode a compressed COCO RLE counts string into run lengths (maskApi's rleFrString). */
export function decodeCounts(counts) {
  if (Array.isArray(counts)) return counts;
  const runs = [];
  let p = 0;
  while (p < counts.length) {
    let x = 0, k = 0, more = true;
    while (more) {
      if (p >= counts.length) throw new Error("RLE counts string is truncated");
      const c = counts.charCodeAt(p) - 48;
      if (c < 0 || c > 63) throw new Error("RLE counts string has an invalid character");
      x |= (c & 0x1f) << (5 * k);
      more = (c & 0x20) !== 0;
      p++; k++;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (runs.length > 2) x += runs[runs.length - 2];
    runs.push(x);
  }
  return runs;
}

function hexToRgb(color) {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(color);
  return m ? [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)] : [255, 0, 255];
}

/** An offscreen canvas holding the mask in its color (alpha 45%), at the mask's size. */
function maskCanvas(mask, color) {
  const [h, w] = mask.size;
  if (!(h > 0 && w > 0)) return null;
  const runs = decodeCounts(mask.counts);
  const off = document.createElement("canvas");
  off.width = w; off.height = h;
  const ctx = off.getContext("2d");
  const img = ctx.createImageData(w, h);
  const [r, g, b] = hexToRgb(color);
  let i = 0, on = false;
  for (const run of runs) {
    if (on) {
      for (let j = i; j < i + run && j < w * h; j++) {
        const row = j % h, col = (j - row) / h; // column-major (Fortran order), as COCO
        const o = (row * w + col) * 4;
        img.data[o] = r; img.data[o + 1] = g; img.data[o + 2] = b; img.data[o + 3] = 115;
      }
    }
    i += run; on = !on;
  }
  ctx.putImageData(img, 0, 0);
  return off;
}

/**
 * Draw `labels` on `canvas`, sized to the canvas' layout box.
 *
 * options: width, height (the sample's pixel size), classIndex (class name -> index),
 * hidden (a Set of class names not to draw), fit ("contain": letter-box like the
 * image; "fill": the canvas is exactly the image).
 *
 * Returns the counts drawn ({boxes, polygons, masks, total}); they are also written on
 * the canvas as data-boxes, data-polygons, data-masks and data-drawn (tests and tools
 * read them).
 */
export function drawLabels(canvas, labels, options) {
  const { width, height, classIndex = {}, hidden = new Set(), fit = "contain" } = options;
  const dpr = window.devicePixelRatio || 1;
  const cw = canvas.clientWidth || canvas.width, ch = canvas.clientHeight || canvas.height;
  canvas.width = Math.max(1, Math.round(cw * dpr));
  canvas.height = Math.max(1, Math.round(ch * dpr));
  const ctx = canvas.getContext("2d");
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const counts = { boxes: 0, polygons: 0, masks: 0, total: 0 };
  if (width > 0 && height > 0) {
    let sx = cw / width, sy = ch / height, ox = 0, oy = 0;
    if (fit === "contain") {
      const s = Math.min(sx, sy);
      sx = sy = s;
      ox = (cw - width * s) / 2;
      oy = (ch - height * s) / 2;
    }
    ctx.setTransform(sx * dpr, 0, 0, sy * dpr, ox * dpr, oy * dpr);
    const line = Math.max(1.5 / sx, 0.5);
    for (const lab of labels) {
      if (hidden.has(lab.class_name)) continue;
      const color = classColor(classIndex, lab.class_name);
      ctx.strokeStyle = color;
      ctx.lineWidth = line;
      const predicted = lab.source && lab.source !== "ground_truth";
      ctx.setLineDash(predicted ? [4 * line, 3 * line] : []);
      if (lab.kind === "mask" && lab.mask && lab.mask.size) {
        const off = maskCanvas(lab.mask, color);
        if (off) {
          ctx.imageSmoothingEnabled = false;
          ctx.drawImage(off, 0, 0, lab.mask.size[1], lab.mask.size[0]);
          counts.masks++;
        }
      } else if (lab.kind === "polygon" && Array.isArray(lab.polygon)) {
        ctx.beginPath();
        for (const ring of lab.polygon) {
          for (let j = 0; j + 1 < ring.length; j += 2) {
            if (j === 0) ctx.moveTo(ring[0], ring[1]); else ctx.lineTo(ring[j], ring[j + 1]);
          }
          ctx.closePath();
        }
        ctx.fillStyle = color + "33";
        ctx.fill("evenodd");
        ctx.stroke();
        counts.polygons++;
      } else if (lab.kind === "box" && lab.w != null && lab.h != null) {
        ctx.strokeRect(lab.x, lab.y, lab.w, lab.h);
        counts.boxes++;
      } else {
        continue;
      }
      counts.total++;
    }
  }
  canvas.dataset.boxes = String(counts.boxes);
  canvas.dataset.polygons = String(counts.polygons);
  canvas.dataset.masks = String(counts.masks);
  canvas.dataset.drawn = String(counts.total);
  return counts;
}

/** The JSON a page put in <script type="application/json" id="...">. */
export function pageData(id = "vf-data") {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : null;
}

/** fetch() with the session's CSRF token on mutations; JSON in and out. Rejects with
 * the API's error object ({type, message, column?}) on an error status. */
export async function api(url, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    headers["X-CSRF-Token"] = (pageData("vf-session") || {}).csrf_token || "";
    headers["Content-Type"] = "application/json";
  }
  const resp = await fetch(url, { method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body) });
  const data = resp.status === 204 ? null : await resp.json().catch(() => null);
  if (!resp.ok) {
    const err = (data && data.error) || { type: "HTTPError", message: `HTTP ${resp.status}` };
    err.status = resp.status;
    throw err;
  }
  return data;
}
