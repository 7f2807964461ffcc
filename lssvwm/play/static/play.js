// The player page: keys -> websocket -> frames. window.playStats is read by tests and benchmarks.
"use strict";
const stats = (window.playStats = {
  connected: false, busy: null, frameCount: 0, framesReceived: 0, lastControl: null,
  latenciesMs: [], frameTimesMs: [], generationMs: [], messages: [], lastStatus: null,
  lastError: null,
});
const $ = (id) => document.getElementById(id);
const controlByKey = {};
const pressedAt = {};  // press id -> performance.now() at keydown
const down = new Set();
let nextPressId = 1;
const socket = new WebSocket(`ws://${location.host}/ws`);

function send(message) {
  if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}
function show(id, url) { if (url) $(id).src = url; }
function formatBytes(n) {
  return n >= 1 << 20 ? (n / (1 << 20)).toFixed(2) + " MiB" : (n / 1024).toFixed(1) + " KiB";
}
function showFigures(m) {
  stats.frameCount = m.frame_count;
  $("frame-count").textContent = m.frame_count;
  $("state-bytes").textContent = formatBytes(m.state_bytes);
  $("fps").textContent = m.fps == null ? "-" : m.fps.toFixed(1);
}
function press(control) {
  if (down.has(control)) return;
  down.add(control);
  const id = nextPressId++;
  pressedAt[id] = performance.now();
  send({ type: "press", control, id });
  const button = $("control-" + control);
  if (button) button.classList.add("down");
}
function release(control) {
  if (!down.delete(control)) return;
  send({ type: "release", control });
  const button = $("control-" + control);
  if (button) button.classList.remove("down");
}

function hello(m) {
  $("model").textContent = `- ${m.model.variant}, step ${m.checkpoint_step}, ${m.kind}`;
  const box = $("controls");
  box.replaceChildren();
  for (const c of m.controls) {
    for (const key of c.keys) controlByKey[key] = c.name;
    const button = document.createElement("button");
    button.id = "control-" + c.name;
    const keys = c.keys.map((k) => (k === " " ? "space" : k.replace("Arrow", "")));
    button.innerHTML = `${c.label} <kbd>${keys.join("</kbd> <kbd>")}</kbd>`;
    button.addEventListener("mousedown", () => press(c.name));
    button.addEventListener("mouseup", () => release(c.name));
    button.addEventListener("mouseleave", () => release(c.name));
    box.appendChild(button);
  }
  show("frame", m.image);
  if (m.truth) { $("side").style.display = "flex"; show("truth", m.truth); show("map", m.map); }
  showFigures(m);
  if (m.status) status(m.status);
}
function status(text) { stats.lastStatus = text; $("message").textContent = text; }

socket.onopen = () => { stats.connected = true; };
socket.onclose = (event) => {
  stats.connected = false;
  if (!stats.busy) status(`disconnected (${event.code}): reload the page when the player runs again`);
};
socket.onmessage = (event) => {
  const m = JSON.parse(event.data);
  stats.messages.push(m.type);
  if (m.type === "hello") hello(m);
  else if (m.type === "frame") {
    show("frame", m.image); show("truth", m.truth); show("map", m.map);
    showFigures(m);
    stats.framesReceived += 1;
    stats.lastControl = m.control;
    stats.frameTimesMs.push(performance.now());
    stats.generationMs.push(1000 * m.seconds);
    $("seconds").textContent = (1000 * m.seconds).toFixed(1) + " ms";
    if (m.press_id != null && pressedAt[m.press_id] != null) {
      const ms = performance.now() - pressedAt[m.press_id];
      delete pressedAt[m.press_id];
      stats.latenciesMs.push(ms);
      $("latency").textContent = ms.toFixed(1) + " ms";
    }
    if (m.blocked) status("a wall is in the way");
  } else if (m.type === "status") { if (m.frame_count != null) showFigures(m); status(m.message); }
  else if (m.type === "busy") {
    stats.busy = m.message;
    $("busy").textContent = m.message; $("busy").style.display = "block";
    $("panels").style.display = "none";
  } else if (m.type === "error") { stats.lastError = m.message; status("error: " + m.message); }
};

function keyName(event) { return event.key.length === 1 ? event.key.toLowerCase() : event.key; }
document.addEventListener("keydown", (event) => {
  const control = controlByKey[keyName(event)];
  if (!control) return;
  event.preventDefault();
  if (!event.repeat) press(control);  // the server repeats while held, at its rate
});
document.addEventListener("keyup", (event) => {
  const control = controlByKey[keyName(event)];
  if (control) release(control);
});
window.addEventListener("blur", () => { for (const c of [...down]) release(c); });
for (const name of ["reset", "restart", "record"]) {
  $(name).addEventListener("click", () => send({ type: name }));
}
