/* Hall display: long-polls /hall-display/api/calls and shows each new call (the hall's display
   device says it: the server pushes {"topic": "call"} to its agent, whose speaker reads it). */
(function () {
  "use strict";
  var body = document.body;
  var hall = body.getAttribute("data-hall");
  var seq = parseInt(body.getAttribute("data-seq") || "0", 10) || 0;
  function text(el, value) { if (el) el.textContent = value; }
  function cell(tr, value) { var td = document.createElement("td"); td.textContent = value; tr.appendChild(td); }
  function render(data) {
    var calls = data.calls || [];
    var top = calls[0];
    if (top) {
      text(document.getElementById("latest-number"), top.number);
      var w = document.getElementById("latest-window");
      w.textContent = "";
      w.appendChild(document.createTextNode("请到 "));
      var b = document.createElement("b"); b.textContent = top.window; w.appendChild(b);
      w.appendChild(document.createTextNode(" 号窗口"));
      text(document.getElementById("latest-window-name"), top.window_name || "");
      var latest = document.querySelector(".latest");
      latest.classList.remove("flash"); void latest.offsetWidth; latest.classList.add("flash");
    }
    var history = document.getElementById("history");
    history.textContent = "";
    calls.slice(1, 9).forEach(function (c) {
      var tr = document.createElement("tr"); cell(tr, c.number); cell(tr, c.window + " 号窗口" + (c.kind === "recall" ? "（重呼）" : "")); history.appendChild(tr);
    });
    var waiting = document.getElementById("waiting");
    if (data.categories) {
      waiting.textContent = "";
      data.categories.forEach(function (c) {
        var li = document.createElement("li");
        var b = document.createElement("b"); b.textContent = c.code; li.appendChild(b);
        li.appendChild(document.createTextNode(" " + c.name + " · 等候 "));
        var s = document.createElement("span"); s.textContent = c.waiting; li.appendChild(s);
        li.appendChild(document.createTextNode(" 人"));
        waiting.appendChild(li);
      });
    }
    body.setAttribute("data-seq", String(seq));
  }
  function poll() {
    fetch("/hall-display/api/calls?hall=" + encodeURIComponent(hall) + "&since=" + seq, { cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
      .then(function (data) {
        if (data.seq > seq) { seq = data.seq; render(data); }
        else if (data.categories) { render({ calls: null, categories: data.categories }); }
        setTimeout(poll, 50);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  function tick() {
    var d = new Date(), p = function (n) { return (n < 10 ? "0" : "") + n; };
    text(document.getElementById("clock"), d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + p(d.getHours()) + ":" + p(d.getMinutes()));
  }
  setInterval(tick, 10000);
  poll();
})();
