// The DBOS views' behaviour: refresh an active workflow, confirm and post actions, open Airflow
// links in Airflow's own router. No value is ever set as HTML: the refreshed part is parsed by
// DOMParser (no script runs) from the server's autoescaped template and its nodes are adopted.
(function () {
  "use strict";
  var body = document.getElementById("dbos-body");
  var paused = false;
  var pending = null;

  function refresh() {
    if (paused || !body || body.dataset.active !== "1") return;
    var u = new URL(window.location.href);
    u.searchParams.set("fragment", "1");
    fetch(u, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (t) {
        if (t === null || paused) return;
        var doc = new DOMParser().parseFromString(t, "text/html");
        var fresh = doc.getElementById("dbos-body");
        if (!fresh) return;
        body.replaceChildren.apply(body, Array.prototype.map.call(fresh.childNodes, function (n) { return document.adoptNode(n); }));
        body.dataset.active = fresh.dataset.active === "1" ? "1" : "0";
      })
      .catch(function () {});
  }
  setInterval(refresh, 2000);

  // Airflow shows the view in a sandboxed iframe that may not navigate the top window; it may script
  // it (same origin), so a link to an Airflow page pushes the route into the UI's own router.
  document.addEventListener("click", function (ev) {
    var a = ev.target.closest && ev.target.closest("a[target=_top]");
    if (!a || window.top === window) return;
    try {
      var top = window.top;
      ev.preventDefault();
      top.history.pushState({}, "", a.href);
      top.dispatchEvent(new PopStateEvent("popstate", { state: {} }));
    } catch (e) { window.location.href = a.href; }
  });

  var box = document.getElementById("confirm");
  var text = document.getElementById("confirm-text");
  if (!box) return; // read-only: no actions
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest && ev.target.closest("button[data-action]");
    if (!b) return;
    pending = { action: b.dataset.action, workflow_id: b.dataset.workflow, step: b.dataset.step ? Number(b.dataset.step) : null };
    text.textContent = b.dataset.confirm;
    box.hidden = false;
    paused = true;
  });
  document.getElementById("confirm-no").addEventListener("click", function () { box.hidden = true; paused = false; });
  document.getElementById("confirm-yes").addEventListener("click", function () {
    box.hidden = true;
    fetch(window.location.pathname + window.location.search, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-DBOS-Airflow": "1" },
      body: JSON.stringify(pending),
    })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, j: j }; }); })
      .then(function (res) {
        var m = document.getElementById("dbos-msg");
        m.className = "msg " + (res.ok ? "ok" : "err");
        m.textContent = res.j.message || (typeof res.j.detail === "string" ? res.j.detail : JSON.stringify(res.j.detail)) || "";
        if (res.j.link) {
          var a = document.createElement("a");
          a.href = res.j.link;
          a.id = "new-workflow";
          a.textContent = " open " + res.j.workflow_id;
          m.appendChild(a);
        }
        paused = false;
        body.dataset.active = "1";
        refresh();
      });
  });
})();
