// Live fleet: poll the JSON view every 3 s and refresh status cells and alerts.
(function () {
  "use strict";
  var table = document.getElementById("fleet");
  var alerts = document.getElementById("alerts");
  if (!table || !alerts) return;
  var query = table.getAttribute("data-query") || "";
  function text(el, value) { el.textContent = value; }
  function refresh() {
    fetch("/console/api/fleet" + (query ? "?" + query : ""), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        data.devices.forEach(function (d) {
          var row = table.querySelector('tr[data-device="' + d.id + '"]');
          if (!row) return;
          var cells = row.children;
          text(cells[3], d.online ? "在线" : "离线");
          cells[3].className = d.online ? "st-online" : "st-offline";
          text(cells[4], d.last_seen);
          text(cells[6], d.version);
        });
        alerts.innerHTML = "";
        if (!data.alerts.length) {
          var none = document.createElement("li"); none.className = "muted none"; none.textContent = "暂无告警"; alerts.appendChild(none);
        }
        data.alerts.forEach(function (a) { var li = document.createElement("li"); li.textContent = a; alerts.appendChild(li); });
      })
      .catch(function () {});
  }
  setInterval(refresh, 3000);
})();
