// Keyboard shortcuts and drag-to-rank for the task page; the form also works without this script.
"use strict";

function setupRanking(form) {
  const list = document.getElementById("responses");
  const selects = Array.from(form.querySelectorAll("select.rank"));
  const hint = document.getElementById("order-hint");
  let groups = [];      // response indices from best to worst; one inner list per tied group
  let tieNext = false;

  function apply() {
    selects.forEach((s) => { s.value = ""; });
    groups.forEach((group, g) => group.forEach((i) => { selects[i].value = String(g + 1); }));
    hint.textContent = groups.length
      ? "Order: " + groups.map((g) => g.map((i) => i + 1).join(" = ")).join(" > ") + (tieNext ? " =" : "")
      : "";
  }

  document.addEventListener("keydown", (event) => {
    if (event.target.closest("textarea, input, select")) return;
    const n = Number.parseInt(event.key, 10);
    if (n >= 1 && n <= selects.length) {
      const i = n - 1;
      if (groups.some((g) => g.includes(i))) return;
      if (tieNext && groups.length) groups[groups.length - 1].push(i); else groups.push([i]);
      tieNext = false;
      apply();
    } else if (event.key === "=") {
      tieNext = groups.length > 0;
      apply();
    } else if (event.key === "Backspace") {
      groups = [];
      tieNext = false;
      apply();
      event.preventDefault();
    }
  });

  let dragged = null;
  list.addEventListener("dragstart", (event) => { dragged = event.target.closest("li"); });
  list.addEventListener("dragover", (event) => event.preventDefault());
  list.addEventListener("drop", (event) => {
    event.preventDefault();
    const target = event.target.closest("li");
    if (!dragged || !target || target === dragged) return;
    const after = event.clientY > target.getBoundingClientRect().top + target.offsetHeight / 2;
    target.parentNode.insertBefore(dragged, after ? target.nextSibling : target);
    groups = Array.from(list.children).map((li) => [Number(li.dataset.index)]);
    apply();
  });
}

function setupPairwise() {
  const keys = { a: "A", b: "B", t: "tie", x: "both_bad" };
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("textarea, input[type=text]")) return;
    const value = keys[event.key.toLowerCase()];
    if (value) document.querySelector(`input[name=choice][value=${value}]`).checked = true;
  });
}

function setupRating(form) {
  // Keys 1-7 fill the ratings in page order (response 1 helpful, harmless, honest, then response 2 ...);
  // Backspace clears the last one. The select being filled is outlined.
  const selects = Array.from(form.querySelectorAll(".ratings select"));
  let current = 0;
  const mark = () => selects.forEach((s, i) => s.classList.toggle("current", i === current));
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("textarea, input[type=text], select")) return;
    const n = Number.parseInt(event.key, 10);
    if (n >= 1 && n <= 7 && current < selects.length) {
      selects[current].value = String(n);
      current += 1;
    } else if (event.key === "Backspace" && current > 0) {
      current -= 1;
      selects[current].value = "";
      event.preventDefault();
    } else {
      return;
    }
    mark();
  });
  mark();
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("label-form");
  if (!form) return;
  if (form.dataset.kind === "rank") setupRanking(form);
  if (form.dataset.kind === "pairwise") setupPairwise();
  if (form.dataset.kind === "rating") setupRating(form);
  let sent = false;
  form.addEventListener("submit", (event) => { if (sent) event.preventDefault(); else sent = true; });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    const inText = event.target.closest("textarea");
    if (inText && !event.ctrlKey) return;
    event.preventDefault();
    if (form.reportValidity()) form.requestSubmit();
  });
});
