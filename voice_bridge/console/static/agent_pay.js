// Agent-assisted payment on the live-calls page: a "Request payment" link on each call with an
// agent on it, the steps of a payment as the caller keys (never digits: the bridge sends none),
// and a notification when it ends. Fed by live.js's "paybot:calls" event; text only.
"use strict";
(function () {
  const panel = document.getElementById("agent-payments");
  const notice = document.getElementById("notice");
  if (!panel) return;
  const announced = new Set();
  const MARK = { waiting: "waiting", entering: "entering…", done: "done ✓", failed: "failed ✗" };

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function card(call) {
    const p = call.payment;
    const box = el("section", "agent-payment " + p.status.replace(" ", "-"));
    box.dataset.callSid = call.call_sid;
    box.dataset.status = p.status;
    box.appendChild(el("h2", "", p.item + " · " + p.amount + " " + p.currency));
    box.appendChild(el("p", "status", "Status: " + p.status + (p.reason ? " (" + p.reason + ")" : "")));
    const steps = el("ol", "steps");
    for (const [name, state] of p.steps) {
      const li = el("li", "step " + state, name.replace("_", " ") + ": " + (MARK[state] || state));
      li.dataset.step = name;
      li.dataset.state = state;
      steps.appendChild(li);
    }
    box.appendChild(steps);
    let method = "";
    if (p.brand) method += p.brand;
    if (p.last4) method += " ending " + p.last4;
    if (method) box.appendChild(el("p", "method", method));
    if (p.confirmation_number) box.appendChild(el("p", "confirmation", "Confirmation " + p.confirmation_number));
    return box;
  }

  function notify(call) {
    const p = call.payment;
    if (!p.finished || announced.has(p.request_id)) return;
    announced.add(p.request_id);
    let text = "Payment for " + p.item + " of " + p.amount + " " + p.currency + ": " + p.status;
    if (p.brand && p.last4) text += ", " + p.brand + " ending " + p.last4;
    if (p.confirmation_number) text += ", confirmation " + p.confirmation_number;
    if (p.reason) text += " (" + p.reason + ")";
    notice.textContent = text + ". The caller is back with you.";
    notice.className = "notice " + (p.status === "succeeded" ? "good" : "bad");
    notice.hidden = false;
  }

  document.addEventListener("paybot:calls", function (event) {
    const calls = event.detail;
    for (const call of calls) {
      const row = document.querySelector('#live-calls tr[data-call-sid="' + call.call_sid + '"]');
      if (row && !row.querySelector("td.actions")) {
        const td = el("td", "actions");
        if (call.agent_on_call && !(call.payment && !call.payment.finished)) {
          const link = el("a", "request-payment", "Request payment");
          link.href = "/console/calls/" + call.call_sid + "/pay";
          td.appendChild(link);
        }
        row.appendChild(td);
      }
    }
    const shown = calls.filter(function (c) { return c.payment; });
    panel.replaceChildren(...shown.map(card));
    shown.forEach(notify);
  });
})();
