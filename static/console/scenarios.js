// Scenario editor: add, remove and reorder questions, options, rules and a rule's items;
// every rule's conditions follow the questions as they are edited. Plain form post, no framework.
(function () {
  "use strict";
  var form = document.getElementById("scenario-form");
  if (!form) return;
  var questionList = document.getElementById("questions");
  var ruleList = document.getElementById("rules");
  var names = {};
  document.querySelectorAll("#item-codes option").forEach(function (o) { names[o.value] = o.textContent; });
  var counter = 0;

  function newKey(prefix) {
    var key;
    do { counter += 1; key = prefix + "n" + counter; } while (form.querySelector('[data-key="' + key + '"]'));
    return key;
  }

  function fromTemplate(id, key) {
    var html = document.getElementById(id).innerHTML.split("__KEY__").join(key).trim();
    var holder = document.createElement(html.indexOf("<tr") === 0 ? "tbody" : "ol");
    holder.innerHTML = html;
    return holder.firstElementChild;
  }

  function questions() {
    return Array.prototype.map.call(questionList.querySelectorAll("li.question"), function (li) {
      var options = Array.prototype.map.call(li.querySelectorAll("tr.option"), function (tr) {
        return { value: tr.querySelector(".o-value").value.trim(), label: tr.querySelector(".o-label").value.trim() };
      }).filter(function (o) { return o.value; });
      return { key: li.dataset.key, id: li.querySelector(".q-id").value.trim(),
               text: li.querySelector(".q-text").value.trim(), options: options };
    });
  }

  // Rebuild every rule's condition selects from the questions, keeping what was chosen.
  function sync() {
    var qs = questions();
    ruleList.querySelectorAll("li.rule").forEach(function (rule, index) {
      rule.querySelector(".rule-no").textContent = String(index + 1);
      var box = rule.querySelector(".conds-list");
      var chosen = {};
      box.querySelectorAll("select").forEach(function (s) { chosen[s.dataset.q] = s.value; });
      box.textContent = "";
      qs.forEach(function (q) {
        var label = document.createElement("label");
        label.className = "cond";
        var span = document.createElement("span");
        span.textContent = q.text || q.id || "（新问题）";
        var select = document.createElement("select");
        select.name = "when." + rule.dataset.key + "." + q.key;
        select.dataset.q = q.key;
        select.add(new Option("不限", ""));
        q.options.forEach(function (o) { select.add(new Option(o.label || o.value, o.value)); });
        select.value = chosen[q.key] || "";
        if (select.selectedIndex < 0) select.value = "";
        label.appendChild(span);
        label.appendChild(select);
        box.appendChild(label);
      });
    });
  }

  function move(li, direction) {
    if (direction === "up" && li.previousElementSibling) li.parentNode.insertBefore(li, li.previousElementSibling);
    if (direction === "down" && li.nextElementSibling) li.parentNode.insertBefore(li.nextElementSibling, li);
  }

  form.addEventListener("click", function (event) {
    var button = event.target.closest("button[type=button]");
    if (!button) return;
    var li = button.closest("li");
    if (button.dataset.move) { move(li, button.dataset.move); sync(); }
    else if (button.hasAttribute("data-remove")) { li.remove(); sync(); }
    else if (button.hasAttribute("data-remove-option")) { button.closest("tr").remove(); sync(); }
    else if (button.hasAttribute("data-remove-cond")) { button.closest(".cond").remove(); }
    else if (button.hasAttribute("data-add-option")) {
      var row = fromTemplate("tpl-option", li.dataset.key);
      li.querySelector("table.options tbody").appendChild(row);
      row.querySelector(".o-value").focus();
    } else if (button.hasAttribute("data-add-item")) {
      var item = fromTemplate("tpl-item", li.dataset.key);
      li.querySelector(".rule-items").appendChild(item);
      item.querySelector(".item-code").focus();
    } else if (button.id === "add-question") {
      var key = newKey("q");
      var question = fromTemplate("tpl-question", key);
      var taken = questions().map(function (q) { return q.id; });
      var n = taken.length + 1;
      while (taken.indexOf("q" + n) >= 0) n += 1;
      question.querySelector(".q-id").value = "q" + n;
      questionList.appendChild(question);
      question.querySelector(".q-text").focus();
      sync();
    } else if (button.id === "add-rule") {
      var rule = fromTemplate("tpl-rule", newKey("r"));
      ruleList.appendChild(rule);
      sync();
      rule.querySelector(".item-code").focus();
    }
  });

  questionList.addEventListener("change", sync);
  questionList.addEventListener("input", function (event) {
    if (event.target.matches(".q-text, .o-label")) sync();
  });
  ruleList.addEventListener("input", function (event) {
    if (!event.target.matches(".item-code")) return;
    var code = event.target.value.trim();
    event.target.parentNode.querySelector(".item-name").textContent = code ? (names[code] || "（目录中没有此事项）") : "";
  });
})();
