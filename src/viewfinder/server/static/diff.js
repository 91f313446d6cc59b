// Diff view: label overlays on the before/after thumbnails of each changed sample.

import { drawLabels, pageData } from "./overlay.js";

const data = pageData();
if (data) {
  const draw = () => {
    for (const pair of data.pairs) {
      const row = document.querySelector(`.pair[data-sample="${CSS.escape(pair.id)}"]`);
      if (!row) continue;
      for (const side of ["before", "after"]) {
        const s = pair[side];
        const canvas = row.querySelector(`.view[data-side="${side}"] canvas`);
        if (s && canvas) {
          drawLabels(canvas, s.labels, { width: s.width, height: s.height, classIndex: data.class_index });
        }
      }
    }
  };
  draw();
  window.addEventListener("resize", draw);
}
