// Follow Airflow's own theme setting (its UI puts "light"/"dark" on <html> and keeps the choice in
// localStorage "theme"); the view is an iframe of the same origin, so it reads both. Runs in <head>.
(function () {
  "use strict";
  var root = document.documentElement;
  function airflowTheme() {
    try {
      var top = window.parent && window.parent !== window ? window.parent.document.documentElement : null;
      if (top && top.classList.contains("dark")) return "dark";
      if (top && top.classList.contains("light")) return "light";
    } catch (e) { /* not Airflow's page */ }
    var stored = null;
    try { stored = window.localStorage.getItem("theme"); } catch (e) { stored = null; }
    if (stored === "dark" || stored === "light") return stored;
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  function apply() { root.setAttribute("data-theme", airflowTheme()); }
  apply();
  try {
    if (window.parent && window.parent !== window) {
      new MutationObserver(apply).observe(window.parent.document.documentElement, { attributes: true, attributeFilter: ["class"] });
    }
  } catch (e) { /* cross-origin parent: keep the stored choice */ }
  window.addEventListener("storage", apply);
})();
