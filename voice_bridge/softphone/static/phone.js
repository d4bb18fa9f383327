// The browser softphone: calls the bot over Twilio's Media Streams protocol from this page.
// Microphone -> capture.js (AudioWorklet, 8 kHz) -> mu-law -> a "media" frame every 20 ms;
// the bot's "media" -> mu-law decoded -> Web Audio, queued; a "mark" is echoed once the audio
// sent before it has played, and "clear" drops the queued audio and echoes the pending marks
// at once, as Twilio does. Keypad buttons (and the keys 0-9 * #) send "dtmf" events.
// The page shows the call's state, never the keys pressed (they may be a card number).
// window.softphone holds the call's counters for tests and the curious.
"use strict";
(function () {
  const LINE_RATE = 8000;
  const FRAME_SAMPLES = 160;
  const SILENCE = 0xff;  // mu-law zero
  const ACCOUNT_SID = "AC" + "0".repeat(32);
  const E164 = /^\+[1-9][0-9]{6,14}$/;
  const TONES = {  // DTMF: low and high frequency of each key, played locally as feedback
    "1": [697, 1209], "2": [697, 1336], "3": [697, 1477], "4": [770, 1209], "5": [770, 1336],
    "6": [770, 1477], "7": [852, 1209], "8": [852, 1336], "9": [852, 1477], "*": [941, 1209],
    "0": [941, 1336], "#": [941, 1477],
  };
  const root = document.getElementById("phone");
  if (!root) return;
  const byId = (id) => document.getElementById(id);
  const form = byId("dial");
  const callerInput = byId("caller");
  const callButton = byId("call");
  const hangupButton = byId("hangup");
  const muteButton = byId("mute");
  const startMuted = byId("start-muted");
  const statusLine = byId("status");
  const errorLine = byId("error");
  const meter = byId("level");
  const events = byId("events");
  const keys = Array.from(document.querySelectorAll("#keypad button"));

  const stats = {
    state: "idle", callSid: "", mediaReceived: 0, samplesReceived: 0, marksReceived: 0,
    marksEchoed: 0, repliesHeard: 0, clears: 0, framesSent: 0, voicedFramesSent: 0, keysSent: 0,
    muted: false, level: 0, lastMediaAt: 0, closeCode: null, closeReason: "",
    queuedSeconds: () => (call ? Math.max(0, call.playAt - call.audio.context.currentTime) : 0),
  };
  window.softphone = stats;
  let call = null;

  // mu-law (G.711) -------------------------------------------------------------------------
  const DECODE = new Int16Array(256);
  for (let u = 0; u < 256; u++) {
    const v = ~u & 0xff;
    const magnitude = ((((v & 0x0f) << 3) + 0x84) << ((v >> 4) & 0x07)) - 0x84;
    DECODE[u] = v & 0x80 ? -magnitude : magnitude;
  }

  const SEGMENT_ENDS = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];

  function encode(sample) {  // as Sun's g711.c (and the bridge's codec): 14 bits, clipped
    let magnitude = sample >> 2;
    let mask = 0xff;
    if (magnitude < 0) {
      magnitude = -magnitude;
      mask = 0x7f;
    }
    magnitude = Math.min(magnitude, 8159) + 0x21;
    let segment = 0;
    while (segment < 8 && magnitude > SEGMENT_ENDS[segment]) segment++;
    if (segment >= 8) return 0x7f ^ mask;
    return ((segment << 4) | ((magnitude >> (segment + 1)) & 0x0f)) ^ mask;
  }

  function toBase64(bytes) {
    let text = "";
    for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text);
  }

  function fromBase64(text) {
    const raw = atob(text);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  // What the page shows ----------------------------------------------------------------------
  function setState(state, text) {
    stats.state = state;
    statusLine.dataset.state = state;
    statusLine.textContent = text;
  }

  function note(text) {
    const item = document.createElement("li");
    item.textContent = new Date().toISOString().slice(11, 19) + "  " + text;
    events.prepend(item);
    while (events.children.length > 60) events.lastElementChild.remove();
  }

  function showError(text) {
    errorLine.textContent = text;
    errorLine.hidden = !text;
  }

  function inCall(on) {
    callButton.disabled = on;
    callerInput.disabled = on;
    hangupButton.disabled = !on;
    muteButton.disabled = !on;
    startMuted.disabled = on;
    for (const key of keys) key.disabled = !on;
  }

  // Placing the call -------------------------------------------------------------------------
  async function placeCall(event) {
    event.preventDefault();
    if (call) return;
    const caller = callerInput.value.trim();
    if (caller && !E164.test(caller)) {
      showError("The number must be in E.164 form, like +15555550100 (or empty: withheld).");
      return;
    }
    showError("");
    events.replaceChildren();
    stats.muted = startMuted.checked;  // from the first frame on
    callButton.disabled = true;
    setState("dialing", "Calling…");
    let audio;
    try {
      audio = await openAudio();
    } catch (err) {
      callButton.disabled = false;
      setState("idle", "Ready to call");
      showError("The microphone is not available (" + (err.name || err) + ").");
      return;
    }
    let placed;
    try {
      const response = await fetch("/phone/call", {
        method: "POST", credentials: "same-origin", cache: "no-store",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ caller: caller, page: root.dataset.pageToken }),
      });
      placed = await response.json();
      if (!response.ok) throw new Error(placed.error || "HTTP " + response.status);
    } catch (err) {
      closeAudio(audio);
      callButton.disabled = false;
      setState("idle", "Ready to call");
      showError("The call could not be placed: " + err.message);
      return;
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    call = {
      audio: audio, callSid: placed.call_sid, streamSid: "MZ" + randomHex(16), sequence: 0,
      chunk: 0, playAt: 0, sources: new Set(), marks: [], timer: 0, hungUp: false,
      ws: new WebSocket(scheme + "//" + location.host + placed.stream_path),
    };
    stats.callSid = placed.call_sid;
    note("Calling from " + (placed.caller || "a withheld number"));
    call.ws.addEventListener("open", () => opened(placed));
    call.ws.addEventListener("message", (message) => received(message.data));
    call.ws.addEventListener("close", (closed) => ended(closed.code, closed.reason));
  }

  async function openAudio() {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true,
               autoGainControl: true },
    });
    const context = new AudioContext({ latencyHint: "interactive" });
    try {
      await context.audioWorklet.addModule("/phone/static/capture.js");
      await context.resume();
    } catch (err) {
      closeAudio({ context: context, stream: stream });
      throw err;
    }
    return { context: context, stream: stream, node: null };
  }

  function closeAudio(audio) {
    for (const track of audio.stream.getTracks()) track.stop();
    if (audio.node) audio.node.port.onmessage = null;
    audio.context.close();
  }

  function opened(placed) {
    send({ event: "connected", protocol: "Call", version: "1.0.0" });
    send({
      event: "start", sequenceNumber: next(), streamSid: call.streamSid,
      start: {
        accountSid: ACCOUNT_SID, streamSid: call.streamSid, callSid: call.callSid,
        tracks: ["inbound"], customParameters: { token: placed.token, caller: placed.caller },
        mediaFormat: { encoding: "audio/x-mulaw", sampleRate: LINE_RATE, channels: 1 },
      },
    });
    const audio = call.audio;
    const source = audio.context.createMediaStreamSource(audio.stream);
    audio.node = new AudioWorkletNode(audio.context, "capture", { outputChannelCount: [1] });
    audio.node.port.onmessage = (message) => captured(message.data);
    const sink = audio.context.createGain();
    sink.gain.value = 0;  // the worklet's output is silence; connected so that it runs
    source.connect(audio.node).connect(sink).connect(audio.context.destination);
    call.timer = setInterval(played, 20);
    inCall(true);
    setState("connected", "Connected");
    note("Connected");
    setMuted(stats.muted);
  }

  // Microphone -> media frames --------------------------------------------------------------
  function captured(samples) {
    if (!call || call.ws.readyState !== WebSocket.OPEN) return;
    let energy = 0;
    for (let i = 0; i < samples.length; i++) energy += samples[i] * samples[i];
    stats.level = Math.sqrt(energy / samples.length) / 32768;
    meter.value = stats.muted ? 0 : Math.min(1, stats.level * 4);
    const bytes = new Uint8Array(FRAME_SAMPLES);
    if (stats.muted) {
      bytes.fill(SILENCE);
    } else {
      for (let i = 0; i < FRAME_SAMPLES; i++) bytes[i] = encode(samples[i]);
      if (stats.level > 0.01) stats.voicedFramesSent += 1;
    }
    call.chunk += 1;
    stats.framesSent += 1;
    send({
      event: "media", sequenceNumber: next(), streamSid: call.streamSid,
      media: {
        track: "inbound", chunk: String(call.chunk),
        timestamp: String((call.chunk - 1) * 20), payload: toBase64(bytes),
      },
    });
  }

  // The bridge's messages -------------------------------------------------------------------
  function received(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch (err) {
      return;
    }
    if (message.event === "media" && message.media) play(message.media.payload);
    else if (message.event === "mark" && message.mark) queueMark(message.mark.name);
    else if (message.event === "clear") clearAudio();
  }

  function play(payload) {
    const bytes = fromBase64(payload);
    if (!bytes.length) return;
    const context = call.audio.context;
    const buffer = context.createBuffer(1, bytes.length, LINE_RATE);
    const data = buffer.getChannelData(0);
    for (let i = 0; i < bytes.length; i++) data[i] = DECODE[bytes[i]] / 32768;
    const source = context.createBufferSource();
    source.buffer = buffer;
    source.connect(context.destination);
    const at = Math.max(context.currentTime + 0.02, call.playAt);
    source.start(at);
    call.playAt = at + buffer.duration;
    call.sources.add(source);
    source.addEventListener("ended", () => call && call.sources.delete(source));
    stats.mediaReceived += 1;
    stats.samplesReceived += bytes.length;
    stats.lastMediaAt = performance.now();
    if (stats.state !== "speaking") setState("speaking", "The bot is speaking");
  }

  function queueMark(name) {
    stats.marksReceived += 1;
    call.marks.push({ name: name, at: call.playAt });
    played();
  }

  function played() {  // every 20 ms: echo the marks whose audio has played
    if (!call) return;
    const now = call.audio.context.currentTime;
    while (call.marks.length && call.marks[0].at <= now) echo(call.marks.shift().name);
    if (stats.state === "speaking" && call.playAt <= now) {
      setState("listening", "Listening: speak, or use the keypad");
    }
  }

  function clearAudio() {
    stats.clears += 1;
    for (const source of call.sources) {
      try {
        source.stop();
      } catch (err) { /* not started yet */ }
    }
    call.sources.clear();
    call.playAt = 0;
    while (call.marks.length) echo(call.marks.shift().name);
    setState("listening", "Listening: speak, or use the keypad");
    note("The bot stopped to listen");
  }

  function echo(name) {
    stats.marksEchoed += 1;
    if (name.endsWith(".end")) stats.repliesHeard += 1;  // the bridge's last mark of a reply
    send({ event: "mark", sequenceNumber: next(), streamSid: call.streamSid, mark: { name: name } });
  }

  // Keypad, mute, hang-up -------------------------------------------------------------------
  function press(digit) {
    if (!call || call.ws.readyState !== WebSocket.OPEN || !(digit in TONES)) return;
    send({
      event: "dtmf", sequenceNumber: next(), streamSid: call.streamSid,
      dtmf: { track: "inbound_track", digit: digit },
    });
    stats.keysSent += 1;
    tone(digit);
  }

  function tone(digit) {
    const context = call.audio.context;
    const gain = context.createGain();
    gain.gain.value = 0.08;
    gain.connect(context.destination);
    for (const frequency of TONES[digit]) {
      const oscillator = context.createOscillator();
      oscillator.frequency.value = frequency;
      oscillator.connect(gain);
      oscillator.start();
      oscillator.stop(context.currentTime + 0.12);
    }
  }

  function setMuted(muted) {
    stats.muted = muted;
    muteButton.setAttribute("aria-pressed", String(muted));
    muteButton.textContent = muted ? "Unmute" : "Mute";
    note(muted ? "Microphone muted" : "Microphone on");
  }

  function hangUp() {
    if (!call || call.hungUp) return;
    call.hungUp = true;
    if (call.ws.readyState === WebSocket.OPEN) {
      send({
        event: "stop", sequenceNumber: next(), streamSid: call.streamSid,
        stop: { accountSid: ACCOUNT_SID, callSid: call.callSid },
      });
      call.ws.close(1000, "hung up");
    }
  }

  function ended(code, reason) {
    if (!call) return;
    clearInterval(call.timer);
    closeAudio(call.audio);
    stats.closeCode = code;
    stats.closeReason = reason || "";
    const hungUp = call.hungUp;
    const said = hungUp ? "You hung up" : "The call ended" + (reason ? " (" + reason + ")" : "");
    call = null;
    inCall(false);
    meter.value = 0;
    setState("ended", said);
    note(said);
  }

  // Plumbing --------------------------------------------------------------------------------
  function send(message) {
    if (call && call.ws.readyState === WebSocket.OPEN) call.ws.send(JSON.stringify(message));
  }

  function next() {
    call.sequence += 1;
    return String(call.sequence);
  }

  function randomHex(bytes) {
    const values = crypto.getRandomValues(new Uint8Array(bytes));
    return Array.from(values, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  form.addEventListener("submit", placeCall);
  hangupButton.addEventListener("click", hangUp);
  muteButton.addEventListener("click", () => setMuted(!stats.muted));
  for (const key of keys) key.addEventListener("click", () => press(key.dataset.digit));
  document.addEventListener("keydown", (event) => {
    if (call && event.target !== callerInput && event.key in TONES) press(event.key);
  });
  window.addEventListener("pagehide", hangUp);
})();
