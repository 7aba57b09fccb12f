// Quaero pages: the little behaviour htmx does not give. Everything works without it.
(function () {
  "use strict";
  // Every htmx request carries the page's CSRF token.
  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) { event.detail.headers["X-CSRF-Token"] = meta.content; }
  });
  // A log panel follows new lines while it is scrolled to the bottom, and keeps at most data-max lines.
  function tidyLog(log) {
    var max = parseInt(log.getAttribute("data-max") || "2000", 10);
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
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".log").forEach(tidyLog);
    var state = document.getElementById("live-state");
    if (state) {
      document.body.addEventListener("htmx:wsOpen", function () { state.textContent = "live"; });
      document.body.addEventListener("htmx:wsClose", function () { state.textContent = "reconnecting…"; });
    }
  });
})();
