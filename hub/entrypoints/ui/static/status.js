// The status page's live part: fetched as an HTML fragment every few seconds and swapped in
// place, so the page never reloads. The fragment comes from this origin and is rendered by the
// hub's autoescaped template; the page's CSP lets no other script or origin in.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var note = document.getElementById("refresh-note");
  if (!live || !note) {
    return;
  }
  var every = Number(live.getAttribute("data-every")) * 1000 || 5000;

  function refresh() {
    fetch(live.getAttribute("data-source"), {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "text/html" },
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("the hub answered " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        live.innerHTML = html;
        note.textContent = "";
        note.className = "muted";
      })
      .catch(function (error) {
        // Keep the last state on screen, and say it is stale.
        note.textContent = "Could not refresh (" + error.message + "); showing the last known state.";
        note.className = "down";
      })
      .then(function () {
        window.setTimeout(refresh, every);
      });
  }

  window.setTimeout(refresh, every);
})();
