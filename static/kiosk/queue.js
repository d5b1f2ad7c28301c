/* The ticket page: print the ticket through the device agent (as the checklist is printed). */
(function () {
  "use strict";
  var ticket = document.getElementById("ticket");
  if (!ticket) return;
  var status = document.getElementById("print-status");
  function say(text) { if (status) status.textContent = text; }
  function print() {
    say("正在打印号票…");
    fetch("/agent/status", { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) throw new Error("本机未连接打印机，请记下您的号码");
      return fetch(ticket.getAttribute("data-ticket-pdf"), { credentials: "same-origin" });
    }).then(function (r) {
      if (!r.ok) return r.json().then(function (b) { throw new Error(b.error ? b.error.message : "打印失败"); });
      return r.blob();
    }).then(function (blob) {
      return fetch("/agent/print", { method: "POST", headers: { "Content-Type": "application/pdf", "X-Print-Label": "ticket" }, body: blob });
    }).then(function (r) { return r.json(); }).then(function (b) {
      if (b.error) throw new Error(b.error.message);
      say("号票已打印，请在出纸口取走");
      document.body.setAttribute("data-printed", b.job || "1");
    }).catch(function (e) { say(e.message || "打印失败，请记下您的号码"); });
  }
  var again = document.getElementById("reprint");
  if (again) again.addEventListener("click", print);
  if (ticket.getAttribute("data-autoprint") === "1") {
    // printed once: a reload or going back shows the ticket without printing it again
    if (window.history && history.replaceState) history.replaceState(null, "", location.pathname);
    print();
  }
})();
