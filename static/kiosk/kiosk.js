/* Kiosk page behaviour: plain JavaScript, no storage of personal data.
   Talks to the device agent on the same origin (/agent/…) when it serves the page. */
(function () {
  "use strict";
  var body = document.body;
  var state = { agent: false, online: true, socket: null, timers: [] };

  function $(sel) { return document.querySelector(sel); }
  function all(sel) { return Array.prototype.slice.call(document.querySelectorAll(sel)); }

  function toast(text) {
    /* where the eye is: next to the main actions when the page has them, else floating */
    var t = $("#action-status") || $("#toast");
    if (!t) return;
    t.textContent = text;
    t.hidden = false;
    clearTimeout(state.toastTimer);
    state.toastTimer = setTimeout(function () { t.hidden = true; }, 6000);
  }

  /* ---- clock ---- */
  function tick() {
    var c = $("#clock");
    if (!c) return;
    var d = new Date();
    function p(n) { return (n < 10 ? "0" : "") + n; }
    c.textContent = d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + p(d.getHours()) + ":" + p(d.getMinutes());
  }
  tick();
  setInterval(tick, 15000);

  /* ---- elderly mode: a non-personal cookie, cleared when the session ends ---- */
  var toggle = $("#elderly-toggle");
  if (toggle) {
    toggle.addEventListener("click", function () {
      var on = !document.documentElement.classList.contains("elderly");
      document.documentElement.classList.toggle("elderly", on);
      document.cookie = "kiosk_elderly=" + (on ? "1" : "0") + "; path=/; SameSite=Strict";
      toggle.setAttribute("aria-pressed", on ? "true" : "false");
    });
  }

  /* ---- ending the session: server, cookies, screen, memory ---- */
  function endSession(reason) {
    if (!state) return;
    if (state.socket) { try { state.socket.close(); } catch (e) { /* closed */ } }
    if (state.consentWait) { try { state.consentWait.abort(); } catch (e) { /* done */ } }
    if (state.pickupWait) { try { state.pickupWait.abort(); } catch (e) { /* done */ } }
    state = null;
    document.cookie = "kiosk_elderly=; path=/; max-age=0";
    document.title = "政务服务自助终端";
    body.innerHTML = "";
    body.setAttribute("data-ended", reason || "end");
    var gone = false;
    function home() { if (!gone) { gone = true; window.location.replace("/kiosk/"); } }
    setTimeout(home, 2000);  /* offline: the server session expires by itself */
    fetch("/kiosk/api/session/end", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}", credentials: "same-origin" })
      .then(home, home);
  }
  window.kioskEndSession = endSession;
  all("[data-end-session]").forEach(function (b) { b.addEventListener("click", function () { endSession("button"); }); });

  /* ---- idle: ask "still there?", then end ---- */
  var warnAfter = parseInt(body.getAttribute("data-idle-warn"), 10) * 1000 || 60000;
  var resetAfter = parseInt(body.getAttribute("data-idle-reset"), 10) * 1000 || 90000;
  var dialog = $("#idle-dialog");
  var warnTimer = null, resetTimer = null;
  function activity() {
    if (!state) return;
    clearTimeout(warnTimer); clearTimeout(resetTimer);
    if (dialog) dialog.hidden = true;
    body.classList.remove("idle-asking");
    warnTimer = setTimeout(function () {
      if (dialog) { body.classList.add("idle-asking"); dialog.hidden = false; $("#idle-continue").focus(); }
    }, warnAfter);
    resetTimer = setTimeout(function () { endSession("idle"); }, resetAfter);
  }
  ["pointerdown", "touchstart", "keydown", "click"].forEach(function (e) { document.addEventListener(e, activity, { passive: true }); });
  document.addEventListener("input", activity, { passive: true });

  /* ---- new content (a notice published, a reload command): never in the middle of someone's flow.
     Only the home page without a session reloads, and only after a quiet moment; anywhere else the
     content waits until the service ends or the idle reset, which both go home (fresh content). ---- */
  var QUIET_MS = 3000;
  state.lastActivity = Date.now();
  document.addEventListener("pointerdown", function () { if (state) state.lastActivity = Date.now(); }, { passive: true });
  document.addEventListener("keydown", function () { if (state) state.lastActivity = Date.now(); }, { passive: true });
  document.addEventListener("input", function () { if (state) state.lastActivity = Date.now(); }, { passive: true });
  function refreshWhenFree() {
    if (!state || !state.contentPending) return;
    var free = body.getAttribute("data-page") === "home" && !$("#session-banner") && !state.busy;
    if (!free) { body.setAttribute("data-content-pending", "1"); return; }
    var quiet = Date.now() - state.lastActivity;
    if (quiet >= QUIET_MS) { window.location.reload(); return; }
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(refreshWhenFree, QUIET_MS - quiet + 50);
  }
  var cont = $("#idle-continue");
  if (cont) cont.addEventListener("click", activity);
  activity();

  /* ---- the device agent: status, peripheral events, printing ---- */
  function setOnline(online) {
    state.online = online;
    var banner = $("#offline-banner");
    if (banner) banner.hidden = online;
    all("[data-needs-online]").forEach(function (a) {
      a.classList.toggle("disabled", !online);
      if (online) a.removeAttribute("aria-disabled"); else a.setAttribute("aria-disabled", "true");
    });
  }
  // A kiosk has no context menu (right click, long press on the touch screen).
  document.addEventListener("contextmenu", function (e) { e.preventDefault(); });
  document.addEventListener("click", function (e) {
    var a = e.target.closest && e.target.closest("[data-needs-online]");
    if (a && state && !state.online) { e.preventDefault(); toast("网络中断，此功能暂不可用"); }
  });

  function onEvent(ev) {
    if (!state) return;
    if (ev.type === "status") setOnline(!!ev.online);
    else if (ev.type === "reload" || ev.type === "content") { state.contentPending = true; refreshWhenFree(); }
    else if (ev.type === "print_job" && (ev.state === "stopped" || ev.state === "failed")) toast(ev.message || "打印失败，请联系工作人员");
    else if (ev.type === "print_job" && ev.state === "completed") toast("打印完成，请在出纸口取件");
    document.dispatchEvent(new CustomEvent("kiosk:" + ev.type, { detail: ev }));
  }

  function connectAgent() {
    if (!state) return;
    var ws;
    try { ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/agent/events"); }
    catch (e) { return; }
    state.socket = ws;
    ws.onmessage = function (m) { try { onEvent(JSON.parse(m.data)); } catch (e) { /* ignore */ } };
    ws.onclose = function () { if (state && state.agent) setTimeout(connectAgent, 2000); };
  }

  fetch("/agent/status", { credentials: "same-origin" }).then(function (r) {
    if (!r.ok) throw new Error("no agent");
    return r.json();
  }).then(function (s) {
    state.agent = true;
    setOnline(!!s.online);
    connectAgent();
  }).catch(function () { /* opened without the agent: no peripherals */ });

  function printPdf(url, label) {
    if (!state.agent) { toast("本机未连接打印机，请到导办台打印"); return; }
    toast("正在准备打印…");
    fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) return r.json().then(function (b) { throw new Error(b.error ? b.error.message : "打印失败"); });
      return r.blob();
    }).then(function (blob) {
      return fetch("/agent/print", { method: "POST", headers: { "Content-Type": "application/pdf", "X-Print-Label": encodeURIComponent(label || "") }, body: blob });
    }).then(function (r) { return r.json(); }).then(function (b) {
      if (b.error) throw new Error(b.error.message);
      toast("已送往打印机，请在出纸口取件");
      body.setAttribute("data-printed", b.job || "1");
    }).catch(function (e) { toast(e.message || "打印失败，请到导办台咨询"); });
  }
  var printBtn = $("#print-checklist");
  if (printBtn) printBtn.addEventListener("click", function () { printPdf(printBtn.getAttribute("data-pdf"), "checklist"); });
  all("[data-print-cert]").forEach(function (b) {
    b.addEventListener("click", function () { printPdf(b.getAttribute("data-print-cert"), "certificate"); });
  });

  /* ---- scenario wizard: one question per screen ---- */
  var wizard = $("#wizard");
  if (wizard) {
    var steps = all("#wizard .question");
    var current = 0;
    var progress = $("#wizard-progress");
    var submit = $("#wizard-submit");
    var back = $("#wizard-back");
    wizard.classList.add("stepped");
    /* a question with data-ask-if is asked only when earlier answers say so; one not asked is
       disabled (not sent) and skipped */
    var condition = function (s) { return JSON.parse(s.getAttribute("data-ask-if") || "{}"); };
    var refresh = function () {
      var given = {};
      steps.forEach(function (s) {
        var cond = condition(s);
        var asked = Object.keys(cond).every(function (k) { return cond[k].indexOf(given[k]) >= 0; });
        var open = Object.keys(cond).some(function (k) { return given[k] === undefined; });
        s.disabled = !asked;
        s.setAttribute("data-countable", asked || open ? "1" : "0");
        if (!asked) all("#wizard [data-step='" + s.getAttribute("data-step") + "'] input").forEach(function (i) { i.checked = false; });
        var c = asked && s.querySelector("input:checked");
        if (c) given[s.getAttribute("data-question")] = c.value;
      });
    };
    var nextAsked = function (i, step) {
      for (var j = i + step; j >= 0 && j < steps.length; j += step) if (!steps[j].disabled) return j;
      return -1;
    };
    function show(i) {
      current = i;
      steps.forEach(function (s, n) { s.hidden = n !== i; });
      var total = steps.filter(function (s) { return s.getAttribute("data-countable") === "1"; }).length;
      var number = steps.slice(0, i + 1).filter(function (s) { return !s.disabled; }).length;
      if (progress) progress.textContent = "第 " + number + " 题，共 " + total + " 题";
      var no = steps[i].querySelector(".q-no");
      if (no) no.textContent = "第 " + number + " 题 / 共 " + total + " 题：";
      back.hidden = nextAsked(i, -1) < 0;
      submit.hidden = true;
      var first = steps[i].querySelector("input");
      if (first) first.focus();
    }
    steps.forEach(function (s, n) {
      s.addEventListener("change", function () {
        refresh();
        var next = nextAsked(n, 1);
        if (next >= 0) show(next);
        else { submit.hidden = false; wizard.submit(); }
      });
    });
    back.addEventListener("click", function () { var prev = nextAsked(current, -1); if (prev >= 0) show(prev); });
    refresh();
    if (steps.length) show(0);
  }

  /* ---- on-screen keypad ---- */
  var codeInput = $("#redeem-code");
  all(".keypad .key").forEach(function (k) {
    k.addEventListener("click", function () {
      var form = k.closest("form");
      var codeInput = (form && form.querySelector("[data-keypad]")) || $("#redeem-code");
      var key = k.getAttribute("data-key");
      if (key === "清除") codeInput.value = "";
      else if (key === "删除") codeInput.value = codeInput.value.slice(0, -1);
      else if (codeInput.value.length < 32) codeInput.value += key;
    });
  });

  /* ---- identification: the agent hands us a session token; adopt it into an HttpOnly cookie ---- */
  var identify = $("#identify");
  var identifyStatus = $("#identify-status");
  function adopt(token, then) {
    return fetch("/kiosk/api/session/adopt", { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ session: token }) })
      .then(function (r) { if (!r.ok) throw new Error(); then(); });
  }
  document.addEventListener("kiosk:identified", function (e) {
    if (!identify) {
      /* agent mode: the resident's card authorised within the session the page already holds */
      if (body.getAttribute("data-page") === "agent") window.location.reload();
      return;
    }
    var token = e.detail.session;
    identifyStatus.textContent = "识别成功，正在打开…";
    adopt(token, function () { window.location.assign(identify.getAttribute("data-next")); })
      .catch(function () { identifyStatus.textContent = "识别失败，请重新放置身份证"; });
    token = null;
  });

  /* ---- 扫码取证: hold a long-poll to the kiosk server until the phone releases ---- */
  var consent = $("#consent");
  if (consent && consent.getAttribute("data-wait")) {
    var waitUrl = consent.getAttribute("data-wait");
    var waitFor = function () {
      if (!state) return;
      state.consentWait = new AbortController();
      fetch(waitUrl, { credentials: "same-origin", headers: { "Accept": "application/json" }, signal: state.consentWait.signal })
        .then(function (r) {
          if (r.status === 410 || r.status === 404) { window.location.reload(); return null; }  /* QR expired: a fresh one */
          if (!r.ok) throw new Error();
          return r.json();
        })
        .then(function (b) {
          if (!b || !state) return;
          if (b.status !== "released") { waitFor(); return; }
          identifyStatus.textContent = "已收到您在手机上选择的证照，正在打开…";
          adopt(b.session, function () { window.location.assign(identify.getAttribute("data-next")); })
            .catch(function () { identifyStatus.textContent = "识别失败，请重新扫码"; });
        })
        .catch(function () { if (state) setTimeout(waitFor, 2000); });
    };
    waitFor();
  }
  /* ---- 存到手机: long-poll until the holder's phone has picked the copy up ---- */
  var pickup = $("#pickup");
  if (pickup && pickup.getAttribute("data-wait")) {
    var pickupUrl = pickup.getAttribute("data-wait");
    var pickupStatus = $("#pickup-status");
    var pickupEnd = function (doneShown, text) {
      pickup.hidden = true;
      $(doneShown).hidden = false;
      pickupStatus.textContent = text;
    };
    var pickupFor = function () {
      if (!state) return;
      state.pickupWait = new AbortController();
      fetch(pickupUrl, { credentials: "same-origin", headers: { "Accept": "application/json" }, signal: state.pickupWait.signal })
        .then(function (r) {
          if (r.status === 410 || r.status === 404) { pickupEnd("#pickup-expired", "二维码已失效"); return null; }
          if (!r.ok) throw new Error();
          return r.json();
        })
        .then(function (b) {
          if (!b || !state) return;
          if (b.status !== "picked_up") { pickupFor(); return; }
          pickupEnd("#pickup-done", "制作事由：" + b.purpose + "，请在“一网”小程序“我的加注件”中查看");
          body.setAttribute("data-picked-up", "1");
        })
        .catch(function () { if (state) setTimeout(pickupFor, 2000); });
    };
    pickupFor();
  }

  document.addEventListener("kiosk:identify_failed", function (e) {
    if (identifyStatus) identifyStatus.textContent = e.detail.message || "识别失败，请重新放置身份证";
  });

  /* ---- 呼叫工作人员: on every page; the hall's console sees it at once; the kiosk says when someone comes ---- */
  var callButton = $("#call-staff");
  var callBanner = $("#call-banner");
  var callText = $("#call-text");
  function showCall(status) {
    if (!callBanner) return;
    callBanner.hidden = false;
    callBanner.setAttribute("data-call-status", status);
    body.setAttribute("data-call", status);
    callText.textContent = status === "acknowledged" ? "工作人员已收到呼叫，正在赶来，请在本机旁稍候" : "已呼叫工作人员，请在本机旁稍候";
  }
  function followCall(id) {
    if (!state || !id) return;
    fetch("/kiosk/api/staff-call/" + id, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(); return r.json(); })
      .then(function (c) {
        if (!state) return;
        if (c.status === "open") { showCall("open"); state.callTimer = setTimeout(function () { followCall(id); }, 1000); }
        else if (c.status === "acknowledged") showCall("acknowledged");
        else if (callBanner) { callBanner.hidden = true; }
      })
      .catch(function () { if (state) state.callTimer = setTimeout(function () { followCall(id); }, 3000); });
  }
  if (callBanner && callBanner.getAttribute("data-call-id")) {
    body.setAttribute("data-call", callBanner.getAttribute("data-call-status"));
    if (callBanner.getAttribute("data-call-status") === "open") followCall(callBanner.getAttribute("data-call-id"));
  }
  if (callButton) {
    callButton.addEventListener("click", function () {
      if (body.getAttribute("data-on-device") !== "1") { toast("请到导办台咨询工作人员"); return; }
      fetch("/kiosk/api/staff-call", { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify({ page: location.pathname, title: (($("h1") || {}).textContent || document.title).trim() }) })
        .then(function (r) { if (!r.ok) throw new Error(); return r.json(); })
        .then(function (c) {
          showCall(c.status);
          callBanner.setAttribute("data-call-id", c.id);
          clearTimeout(state.callTimer);
          if (c.status === "open") followCall(c.id);
        })
        .catch(function () { toast("呼叫失败，请到导办台咨询工作人员"); });
    });
  }

  /* ---- search every item: letters on screen, results as you type ---- */
  var searchForm = $("#search-form");
  if (searchForm) {
    var searchInput = $("#search-q");
    var searchResults = $("#search-results");
    var searchStatus = $("#search-status");
    var searchTimer = null, searchSeq = 0;
    var runSearch = function () {
      var q = searchInput.value.trim();
      var mine = ++searchSeq;
      if (!q) { searchResults.innerHTML = ""; searchStatus.textContent = ""; return; }
      fetch(searchForm.getAttribute("data-api") + "?q=" + encodeURIComponent(q), { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error(); return r.json(); })
        .then(function (b) {
          if (mine !== searchSeq || !state) return;
          searchResults.innerHTML = "";
          b.results.forEach(function (item) {
            var li = document.createElement("li");
            var a = document.createElement("a");
            a.className = "row"; a.href = item.url; a.textContent = item.name;
            var chev = document.createElement("span");
            chev.className = "chev"; chev.setAttribute("aria-hidden", "true"); chev.textContent = "›";
            a.appendChild(chev); li.appendChild(a); searchResults.appendChild(li);
          });
          searchStatus.textContent = b.results.length ? "找到 " + b.results.length + " 个事项" : "没有找到“" + q + "”，换个说法试试，或到导办台咨询";
        })
        .catch(function () { /* the form still works without it */ });
    };
    var soon = function () { clearTimeout(searchTimer); searchTimer = setTimeout(runSearch, 250); };
    searchInput.addEventListener("input", soon);
    all("[data-letter]").forEach(function (k) {
      k.addEventListener("click", function () {
        var key = k.getAttribute("data-letter");
        if (key === "clear") searchInput.value = "";
        else if (key === "back") searchInput.value = searchInput.value.slice(0, -1);
        else if (searchInput.value.length < 50) searchInput.value += key;
        soon();
      });
    });
  }

  /* ---- display code held to the camera ---- */
  document.addEventListener("kiosk:qr", function (e) {
    var form = $("#redeem-form");
    if (!form || !codeInput) return;
    codeInput.value = e.detail.text;
    form.submit();
  });
})();
