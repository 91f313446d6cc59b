// The filter bar: checks the expression while it is typed (the API answers 400 with
// {"error": {"type": "FilterSyntaxError", "message", "column"}}) and shows the error in
// place, with a caret under the column, before the form is submitted.

import { api, pageData } from "./overlay.js";

const DEBOUNCE_MS = 350;

function showError(box, expression, err) {
  box.replaceChildren();
  const msg = document.createElement("span");
  msg.className = "message";
  msg.textContent = err.column ? `${err.message} (column ${err.column})` : err.message;
  box.append(msg);
  if (err.column) {
    const pre = document.createElement("pre");
    const expr = document.createElement("span");
    expr.className = "expr";
    expr.textContent = expression;
    const caret = document.createElement("span");
    caret.className = "caret";
    caret.textContent = " ".repeat(Math.max(0, err.column - 1)) + "^";
    pre.append(expr, "\n", caret);
    box.append(pre);
  }
  box.hidden = false;
}

function isFilterError(err) {
  return err.status === 400 && (err.type === "FilterSyntaxError" || err.type === "filter_syntax"
                                || err.column !== undefined);
}

const data = pageData();
const form = document.getElementById("filter-form");
const box = document.getElementById("filter-error");
if (data && form && box) {
  const input = form.elements.filter;
  let timer = 0, seq = 0;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const expression = input.value;
      const mine = ++seq;
      if (!expression.trim()) { box.hidden = true; return; }
      const q = new URLSearchParams({ ref: data.version, filter: expression, limit: "1" });
      try {
        await api(`/api/v1/datasets/${encodeURIComponent(data.dataset)}/samples?${q}`);
        if (mine === seq) box.hidden = true;
      } catch (err) {
        if (mine === seq && isFilterError(err)) showError(box, expression, err);
      }
    }, DEBOUNCE_MS);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { input.value = ""; box.hidden = true; }
  });
}
