// The status page: polls api/status (next to the page: /api/status, or
// /accounts/<account>/api/status with several accounts) and renders it. Everything from the
// bridge is inserted with textContent, never as HTML.
"use strict";

const POLL_MS = 1500;
const $ = (id) => document.getElementById(id);
let qrVersion = null;

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function span(text, className) {
  const s = document.createElement("span");
  s.textContent = text;
  s.className = className;
  return s;
}

function clock(iso) {
  const t = new Date(iso);
  return isNaN(t) ? "" : t.toLocaleTimeString();
}

function renderQr(s) {
  const box = $("qr");
  const img = $("qr-img");
  if (s.state === "login_required" && s.qr) {
    if (qrVersion !== s.qr.version) {
      qrVersion = s.qr.version;
      delete img.dataset.loaded;
      img.src = "qr.png?v=" + encodeURIComponent(s.qr.version);
    }
    box.hidden = false;
  } else {
    box.hidden = true;
    if (qrVersion !== null) {
      qrVersion = null;
      delete img.dataset.loaded;
      img.removeAttribute("src");
    }
  }
}

function renderSinks(s) {
  const rows = s.sinks.map((k) => {
    const tr = document.createElement("tr");
    tr.append(
      cell(k.name),
      cell(k.connected ? "connected" : "not connected", k.connected ? "up" : "down"),
      cell(String(k.depth)),
      cell(k.error || "", "muted"),
    );
    return tr;
  });
  $("sinks").replaceChildren(...rows);
  $("queue").textContent = String(s.queue_depth);
  $("sent-today").textContent = s.sends_today.count + " of " + s.sends_today.per_day;
  $("last-sync").textContent =
    s.last_sync_age_seconds === null ? "never" : Math.round(s.last_sync_age_seconds) + " s ago";
}

function renderEvents(s) {
  const items = s.events.map((e) => {
    const li = document.createElement("li");
    li.append(
      span(clock(e.time), "time muted"),
      span(e.type || e.kind, "kind"),
      span(e.who, "who"),
      span(e.text, e.ok === false ? "text failed" : "text"),
    );
    return li;
  });
  $("events").replaceChildren(...items);
  $("no-events").hidden = items.length > 0;
}

function render(s) {
  $("account").textContent = s.account;
  $("signout").hidden = !s.token_required;
  const state = $("state");
  state.textContent = s.state;
  state.className = "badge state-" + s.state;
  $("since").textContent = "since " + new Date(s.since).toLocaleString();
  $("reason").textContent = s.reason;
  $("relogin").disabled = s.state === "online";
  renderQr(s);
  renderSinks(s);
  renderEvents(s);
}

async function refresh() {
  try {
    const r = await fetch("api/status", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
    $("unreachable").hidden = true;
  } catch (e) {
    $("unreachable").textContent = "Cannot reach the bridge (" + e.message + ")";
    $("unreachable").hidden = false;
  }
}

async function relogin() {
  const note = $("relogin-note");
  try {
    const r = await fetch("relogin", { method: "POST" });
    note.textContent = r.ok ? "requested" : "refused (HTTP " + r.status + ")";
  } catch (e) {
    note.textContent = "failed: " + e.message;
  }
  refresh();
}

// Ends this page's session with the bridge (not the WeChat session); the page then asks for
// the token again.
async function signOut() {
  try {
    await fetch("/signout", { method: "POST" });
  } finally {
    location.assign("/");
  }
}

$("qr-img").addEventListener("load", (ev) => { ev.target.dataset.loaded = "1"; });
$("relogin").addEventListener("click", relogin);
$("signout").addEventListener("click", signOut);
refresh();
setInterval(refresh, POLL_MS);
