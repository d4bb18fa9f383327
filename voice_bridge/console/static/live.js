// Live calls: the bridge pushes the list of calls (Server-Sent Events) whenever one changes.
// Text only (textContent), never HTML from the server.
"use strict";
(function () {
  const body = document.querySelector("#live-calls tbody");
  const none = document.getElementById("no-calls");
  if (!body) return;

  function captureText(c) {
    if (!c) return "";
    let text = (c.field || c.state) + ": " + c.digits_entered + " keyed";
    if (c.brand) text += ", " + c.brand;
    if (c.last4) text += " ending " + c.last4;
    return text;
  }

  function row(call) {
    const tr = document.createElement("tr");
    tr.dataset.callSid = call.call_sid;
    const since = new Date(call.started_at).toISOString().slice(11, 19);
    const cells = [
      ["sid", call.call_sid], ["", call.caller], ["", since], ["turns", String(call.turns)],
      ["step", call.step], ["capture", captureText(call.capture)],
    ];
    for (const [cls, text] of cells) {
      const td = document.createElement("td");
      if (cls) td.className = cls;
      td.textContent = text;
      tr.appendChild(td);
    }
    return tr;
  }

  const events = new EventSource("/console/calls/events");
  events.addEventListener("calls", function (event) {
    const calls = JSON.parse(event.data);
    body.replaceChildren(...calls.map(row));
    none.hidden = calls.length > 0;
    document.dispatchEvent(new CustomEvent("paybot:calls", { detail: calls }));  // agent_pay.js
  });
  events.addEventListener("signed-out", function () {
    events.close();
    window.location.assign("/console/login");
  });
})();
