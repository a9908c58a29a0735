// adguide chat page: plain JS, no build step. Streams a turn (server-sent events over fetch), shows tool
// activity as it happens, proposals with Confirm / Reject, and a bid-landscape chart for a keyword in play.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { key: localStorage.getItem("adguide.key") || "", thread: null, busy: false, token: null, extra: false };

function setStatus(text) { $("status").textContent = text; }

async function api(method, path, body) {
  const resp = await fetch(path, {
    method, headers: { "Authorization": "Bearer " + state.key, "Content-Type": "application/json",
                       "Accept": "text/event-stream" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!resp.ok) {
    let message = resp.status + " " + resp.statusText;
    try { message = (await resp.json()).error.message; } catch (_) { /* not JSON */ }
    const err = new Error(message); err.status = resp.status; throw err;
  }
  return resp;
}

function addMessage(role, text) {
  const li = document.createElement("li");
  li.className = role; li.textContent = text;
  $("messages").appendChild(li);
  li.scrollIntoView({ block: "end" });
  return li;
}

// --- server-sent events over fetch (EventSource can't POST or send headers) ---------------------------
async function* readEvents(resp) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (data) yield JSON.parse(data);
    }
  }
}

const toolRows = {};
function onEvent(ev, bubble) {
  switch (ev.type) {
    case "token":
      bubble.dataset.raw = (bubble.dataset.raw || "") + ev.text;
      bubble.textContent = bubble.dataset.raw;
      break;
    case "tool_call": {
      const li = document.createElement("li");
      li.className = "running";
      li.textContent = ev.name + "(" + JSON.stringify(ev.args) + ")";
      li.dataset.started = performance.now();
      $("tools").prepend(li);
      toolRows[ev.call_id || ev.name] = li;  // call_id pairs a call with its result (two calls may share a name)
      const kw = ev.args && ev.args.keyword_id;
      if (kw) showLandscape(kw, null);
      break;
    }
    case "tool_result": {
      const li = toolRows[ev.call_id || ev.name];
      if (li) {
        li.className = ev.ok ? "ok" : "failed";
        li.textContent += "  " + Math.round(performance.now() - li.dataset.started) + " ms";
      }
      break;
    }
    case "confirmation": showProposal(ev); break;
    case "extra_confirmation": showExtra(ev); break;
    case "final": bubble.textContent = ev.text; break;
    case "error": addMessage("error", ev.message); break;
    case "done": setStatus("Ready." + (ev.stop_reason ? " (turn stopped: " + ev.stop_reason + ")" : "")); break;
    default: break;
  }
}

async function runTurn(path, body) {
  state.busy = true; syncButtons();
  const bubble = addMessage("assistant", "…");
  setStatus("Thinking…");
  try {
    const resp = await api("POST", path, body);
    for await (const ev of readEvents(resp)) onEvent(ev, bubble);
    if (bubble.textContent === "…") bubble.remove();
  } catch (err) {
    bubble.remove();
    addMessage("error", err.message);
    setStatus("Ready.");
  } finally {
    state.busy = false; syncButtons();
  }
}

// --- proposals ---------------------------------------------------------------------------------------
function fmt(x) { return typeof x === "number" ? x.toLocaleString(undefined, { maximumFractionDigits: 2 }) : String(x ?? "—"); }

function showProposal(p) {
  state.token = p.token; state.extra = false;
  const tbody = $("proposal-changes").querySelector("tbody");
  tbody.innerHTML = "";
  for (const c of p.changes || []) {
    const tr = document.createElement("tr");
    for (const v of [c.id, c.field, fmt(c.before), fmt(c.after)]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }
    tbody.appendChild(tr);
  }
  renderImpact(p.impact);
  $("proposal-extra").hidden = true;
  const until = new Date((p.expires_at || 0) * 1000);
  $("proposal-expiry").textContent = p.expires_at ? "Valid until " + until.toLocaleTimeString() : "";
  $("proposal").hidden = false;
  const bid = (p.changes || []).find((c) => c.field === "bid");
  if (bid) showLandscape(bid.id, bid.after);
}

// The simulated impact: status quo vs the change over `days`, with the difference's interval.
function renderImpact(impact) {
  const box = $("proposal-impact");
  box.innerHTML = "";
  if (!impact || typeof impact !== "object" || !impact.status_quo) return;
  const mean = (v) => (v && typeof v === "object" ? v.mean : v);
  const money = (v) => (typeof v === "number" ? (v < 0 ? "-$" : "$") + Math.abs(v).toLocaleString(undefined,
    { minimumFractionDigits: 2, maximumFractionDigits: 2 }) : "—");
  const caption = document.createElement("caption");
  caption.textContent = "Simulated over " + impact.days + " days";
  const table = document.createElement("table");
  table.appendChild(caption);
  const head = table.insertRow();
  for (const h of ["", "now", "with the change", "difference (range)"]) {
    const th = document.createElement("th"); th.textContent = h; head.appendChild(th);
  }
  for (const k of ["spend", "sales", "incremental_profit"]) {
    const d = (impact.difference || {})[k];
    const row = table.insertRow();
    const range = d && typeof d === "object" ? " (" + money(d.low) + " to " + money(d.high) + ")" : "";
    for (const v of [k.replace("_", " "), money(mean(impact.status_quo[k])), money(mean((impact.changed || {})[k])),
                     money(mean(d)) + range]) row.insertCell().textContent = v;
  }
  box.appendChild(table);
}

function showExtra(ev) {
  state.extra = true;
  $("proposal-extra").textContent = ev.question + " " + (ev.reasons || []).join("; ");
  $("proposal-extra").hidden = false;
  $("proposal").hidden = false;
}

async function decide(decision) {
  $("proposal").hidden = true;
  addMessage("user", decision === "confirm" ? "Confirm" : "Reject");
  const body = { decision, token: state.token };
  if (state.extra) body.acknowledge_risk = true;
  await runTurn("/v1/threads/" + state.thread + "/confirmation", body);
}

// --- the bid-landscape chart -------------------------------------------------------------------------
async function showLandscape(keywordId, proposedBid) {
  let data;
  try {
    const resp = await fetch("/v1/charts/bid-landscape?keyword_id=" + encodeURIComponent(keywordId),
                             { headers: { "Authorization": "Bearer " + state.key } });
    if (!resp.ok) return;
    data = await resp.json();
  } catch (_) { return; }
  drawChart(data, proposedBid);
}

function drawChart(data, proposedBid) {
  const svg = $("chart");
  const W = 420, H = 260, L = 52, R = 12, T = 12, B = 34;
  const pts = data.points || [];
  if (!pts.length) return;
  // A figure is a number, or an interval {mean, low, high} (incremental profit: Monte Carlo band).
  const mean = (v) => (v && typeof v === "object" ? v.mean : v);
  const series = ["incremental_profit", "sales", "spend"].filter((k) => pts.some((p) => typeof mean(p[k]) === "number"));
  const xs = pts.map((p) => p.bid);
  const ys = pts.flatMap((p) => series.flatMap((k) => {
    const v = p[k];
    return v && typeof v === "object" ? [v.mean, v.low ?? v.mean, v.high ?? v.mean] : [v ?? 0];
  }));
  const xmin = Math.min(...xs), xmax = Math.max(...xs);
  const ymin = Math.min(0, ...ys), ymax = Math.max(...ys, 1);
  const X = (x) => L + (x - xmin) / ((xmax - xmin) || 1) * (W - L - R);
  const Y = (y) => H - B - (y - ymin) / ((ymax - ymin) || 1) * (H - T - B);
  const ns = "http://www.w3.org/2000/svg";
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.appendChild(e); return e;
  };
  svg.innerHTML = "";
  el("line", { x1: L, y1: Y(0), x2: W - R, y2: Y(0), class: "axis" });
  el("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" });
  for (let i = 0; i <= 4; i++) {
    const y = ymin + (ymax - ymin) * i / 4;
    el("text", { x: L - 6, y: Y(y) + 4, "text-anchor": "end" }, (y < 0 ? "-$" : "$") + Math.abs(Math.round(y)).toLocaleString());
  }
  const every = Math.ceil(xs.length / 6);  // at most six bid labels, so they don't overlap
  xs.forEach((x, i) => { if (i % every === 0) el("text", { x: X(x), y: H - B + 16, "text-anchor": "middle" }, "$" + x.toFixed(2)); });
  el("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle" }, "bid");
  const band = pts.filter((p) => p.incremental_profit && typeof p.incremental_profit === "object"
                                 && typeof p.incremental_profit.low === "number");
  if (band.length === pts.length) {
    const up = band.map((p, i) => (i ? "L" : "M") + X(p.bid).toFixed(1) + " " + Y(p.incremental_profit.high).toFixed(1));
    const down = band.slice().reverse().map((p) => "L" + X(p.bid).toFixed(1) + " " + Y(p.incremental_profit.low).toFixed(1));
    el("path", { d: up.join(" ") + " " + down.join(" ") + " Z", class: "band" });
  }
  for (const k of series) {
    const d = pts.map((p, i) => (i ? "L" : "M") + X(p.bid).toFixed(1) + " " + Y(mean(p[k]) ?? 0).toFixed(1)).join(" ");
    el("path", { d, class: k.replace("incremental_", ""), "data-series": k });
  }
  el("line", { x1: X(data.current_bid), y1: T, x2: X(data.current_bid), y2: H - B, class: "marker" });
  el("text", { x: X(data.current_bid) + 4, y: T + 10 }, "now");
  if (typeof proposedBid === "number") {
    const px = X(Math.min(Math.max(proposedBid, xmin), xmax));
    el("line", { x1: px, y1: T, x2: px, y2: H - B, class: "proposed" });
    el("text", { x: px + 4, y: H - B - 6 }, "proposed");
  }
  $("chart-keyword").textContent = data.keyword_id;
  $("chart-days").textContent = data.days;
  $("chart-panel").hidden = false;
}

// --- wiring ------------------------------------------------------------------------------------------
function syncButtons() {
  const ready = Boolean(state.key && state.thread) && !state.busy;
  $("send").disabled = !ready; $("message").disabled = !ready;
  $("new-thread").disabled = !state.key || state.busy;
  $("confirm").disabled = state.busy; $("reject").disabled = state.busy;
}

async function newThread() {
  try {
    const resp = await fetch("/v1/threads", { method: "POST", headers: { "Authorization": "Bearer " + state.key,
      "Content-Type": "application/json" }, body: JSON.stringify({ title: "web chat" }) });
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.error.message);
    state.thread = body.thread_id;
    $("messages").innerHTML = ""; $("tools").innerHTML = ""; $("proposal").hidden = true;
    setStatus("Connected. Ask a question.");
  } catch (err) {
    state.thread = null;
    setStatus(err.message);
  }
  syncButtons();
}

$("key-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  state.key = $("api-key").value.trim();
  localStorage.setItem("adguide.key", state.key);
  await newThread();
});
$("new-thread").addEventListener("click", newThread);
$("composer").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $("message").value.trim();
  if (!text || state.busy) return;
  $("message").value = "";
  addMessage("user", text);
  await runTurn("/v1/threads/" + state.thread + "/messages", { message: text });
});
$("message").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); }
});
$("confirm").addEventListener("click", () => decide("confirm"));
$("reject").addEventListener("click", () => decide("reject"));
$("api-key").value = state.key;
syncButtons();
