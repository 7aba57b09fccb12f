// Quaero pages: the little behaviour htmx does not give. Everything works without it.
(function () {
  "use strict";
  // Every htmx request carries the page's CSRF token.
  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) { event.detail.headers["X-CSRF-Token"] = meta.content; }
  });
  // A log panel follows new lines while it is scrolled to the bottom, and keeps at most data-max lines.
  // Lines come in time order, but a live batch can hold a line older than one shown already (several
  // processes write their lines in batches): such a line moves back to its place (timestamp, then id).
  function key(line) { return [line.getAttribute("data-ts") || "", parseInt(line.getAttribute("data-id") || "0", 10)]; }
  function before(a, b) { var x = key(a), y = key(b); return x[0] < y[0] || (x[0] === y[0] && x[1] < y[1]); }
  function orderLines(container) {
    var lines = Array.prototype.slice.call(container.querySelectorAll(":scope > .line"));
    for (var i = 1; i < lines.length; i++) {
      if (before(lines[i], lines[i - 1])) {
        lines.sort(function (a, b) { return before(a, b) ? -1 : before(b, a) ? 1 : 0; });
        lines.forEach(function (line) { container.appendChild(line); });
        return;
      }
    }
  }
  function tidyLog(log) {
    var max = parseInt(log.getAttribute("data-max") || "2000", 10);
    var container = log.querySelector("#log-lines");
    if (container) { orderLines(container); }
    var lines = log.querySelectorAll(".line");
    for (var i = 0; i < lines.length - max; i++) { lines[i].remove(); }
    if (log.dataset.follow !== "no") { log.scrollTop = log.scrollHeight; }
  }
  document.addEventListener("scroll", function (event) {
    var log = event.target;
    if (log.classList && log.classList.contains("log")) {
      log.dataset.follow = (log.scrollHeight - log.scrollTop - log.clientHeight < 40) ? "yes" : "no";
    }
  }, true);
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var log = event.detail.target && event.detail.target.closest ? event.detail.target.closest(".log") : null;
    if (log) { tidyLog(log); }
  });
  // The definition editor: line numbers beside the text, the lines with problems marked, both kept in step
  // with the text as it scrolls and changes; "line N" in a problem moves the caret to that line.
  function setUpEditor(root) {
    var area = root.querySelector("textarea"), gutter = root.querySelector(".gutter-lines");
    var marks = root.querySelector(".marks");
    var errorLines = [], shownCount = -1, shownErrors = "";
    function lineHeight() { return parseFloat(getComputedStyle(area).lineHeight) || 18; }
    function padTop() { return parseFloat(getComputedStyle(area).paddingTop) || 0; }
    function render() {
      var count = area.value.split("\n").length, key = errorLines.join(",");
      if (count !== shownCount || key !== shownErrors) {
        var lines = document.createDocumentFragment();
        for (var n = 1; n <= count; n++) {
          var span = document.createElement("span");
          span.className = errorLines.indexOf(n) >= 0 ? "ln error" : "ln";
          span.textContent = String(n);
          lines.appendChild(span);
        }
        gutter.replaceChildren(lines);
        var bands = document.createDocumentFragment();
        errorLines.forEach(function (n) {
          var band = document.createElement("div");
          band.className = "mark";
          band.setAttribute("data-line", String(n));
          band.style.top = (padTop() + (n - 1) * lineHeight()) + "px";
          bands.appendChild(band);
        });
        marks.replaceChildren(bands);
        shownCount = count; shownErrors = key;
      }
      follow();
    }
    function follow() {
      gutter.style.transform = "translateY(" + (-area.scrollTop) + "px)";
      marks.style.transform = "translateY(" + (-area.scrollTop) + "px)";
    }
    function readProblems() {
      var problems = document.getElementById("problems");
      var text = problems ? problems.getAttribute("data-lines") || "" : "";
      errorLines = text ? text.split(",").map(Number) : [];
      render();
    }
    area.addEventListener("input", render);
    area.addEventListener("scroll", follow);
    document.addEventListener("htmx:afterSettle", readProblems);
    document.addEventListener("click", function (event) {
      var link = event.target.closest ? event.target.closest("a.goto-line") : null;
      if (!link) { return; }
      event.preventDefault();
      var line = parseInt(link.getAttribute("data-line"), 10), start = 0;
      for (var i = 1; i < line; i++) {
        var next = area.value.indexOf("\n", start);
        if (next < 0) { break; }
        start = next + 1;
      }
      var end = area.value.indexOf("\n", start);
      area.focus();
      area.setSelectionRange(start, end < 0 ? area.value.length : end);
      area.scrollTop = Math.max(0, (line - 1) * lineHeight() - area.clientHeight / 3);
      follow();
    });
    readProblems();
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-editor]").forEach(setUpEditor);
    document.querySelectorAll(".log").forEach(tidyLog);
    var state = document.getElementById("live-state");
    if (state) {
      document.body.addEventListener("htmx:wsOpen", function () { state.textContent = "live"; });
      document.body.addEventListener("htmx:wsClose", function () { state.textContent = "reconnecting…"; });
    }
  });
})();
