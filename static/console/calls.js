// 终端呼叫: poll every second and redraw the table (new calls appear at once).
(function () {
  "use strict";
  var table = document.getElementById("calls");
  if (!table) return;
  var csrf = table.getAttribute("data-csrf") || "";
  var body = table.querySelector("tbody");
  var shown = "";
  function cell(tr, text, cls) { var td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); return td; }
  function draw(calls) {
    var key = JSON.stringify(calls.map(function (c) { return [c.id, c.status, c.page]; }));
    if (key === shown) return;
    shown = key;
    body.innerHTML = "";
    if (!calls.length) { var tr0 = document.createElement("tr"); tr0.className = "none"; var td0 = cell(tr0, "暂无呼叫", "muted"); td0.colSpan = 7; body.appendChild(tr0); return; }
    calls.forEach(function (c) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-call", c.id); tr.setAttribute("data-status", c.status);
      cell(tr, c.at); cell(tr, c.hall_name); cell(tr, c.device_label); cell(tr, c.location);
      var page = cell(tr, c.page_title + " ");
      var path = document.createElement("span"); path.className = "muted"; path.textContent = c.page; page.appendChild(path);
      if (c.status === "acknowledged") cell(tr, c.acknowledged_by + " 已响应（" + c.acknowledged_at + "）");
      else { var st = cell(tr, ""); var strong = document.createElement("strong"); strong.className = "call-wait"; strong.textContent = "等待响应"; st.appendChild(strong); }
      var act = cell(tr, "");
      if (c.status === "open") {
        var form = document.createElement("form"); form.method = "post"; form.action = "/console/calls/" + c.id + "/acknowledge";
        var hidden = document.createElement("input"); hidden.type = "hidden"; hidden.name = "_xsrf"; hidden.value = csrf; form.appendChild(hidden);
        var button = document.createElement("button"); button.type = "submit"; button.className = "primary"; button.textContent = "我去处理"; form.appendChild(button);
        act.appendChild(form);
      }
      body.appendChild(tr);
    });
  }
  function refresh() {
    fetch("/console/api/calls", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) draw(data.calls); })
      .catch(function () {});
  }
  setInterval(refresh, 1000);
})();
