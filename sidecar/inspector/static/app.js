// llm-sidecar inspector: a live list of finished requests (server-sent events from
// /sidecar/events) and panels fetched from the admin API. No framework, no build step, no
// network beyond this sidecar. Every value from a request is written with textContent, never
// as HTML: model names, keys and tags come from clients.
"use strict";

const MAX_ROWS = 500;
const PANEL_REFRESH_MS = 5000;
const rows = [];            // newest first: request records as the server sent them
let paused = false;
let pending = [];           // records that arrived while paused
let skipped = 0;
let lastSeq = 0;
let selectedId = null;
let source = null;

const $ = (id) => document.getElementById(id);
const el = (tag, text, cls) => {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
};
// Dollars with two significant digits below a cent ($0.0000031), trailing zeros dropped.
const usd = (v) => (v === null || v === undefined) ? "—" : v === 0 ? "$0" :
  "$" + (v >= 1 ? v.toFixed(2) : v >= 0.01 ? v.toFixed(4)
         : v.toFixed(Math.min(10, 1 - Math.floor(Math.log10(v)))).replace(/0+$/, ""));
const ms = (v) => (v === null || v === undefined) ? "—" :
  (v >= 1000 ? (v / 1000).toFixed(2) + " s" : v.toFixed(v >= 100 ? 0 : 1) + " ms");
const int = (v) => (v === null || v === undefined) ? "—" : Number(v).toLocaleString();
const when = (t) => new Date(t * 1000).toLocaleTimeString([], {hour12: false});

async function getJSON(path) {
  const response = await fetch(path, {credentials: "same-origin", cache: "no-store"});
  if (!response.ok) {
    const error = new Error(String(response.status));
    error.status = response.status;
    throw error;
  }
  return response.json();
}

// ---- the request list -------------------------------------------------------------------

function matches(r) {
  const model = $("f-model").value.trim().toLowerCase();
  const status = $("f-status").value;
  const key = $("f-key").value.trim().toLowerCase();
  const cache = $("f-cache").value;
  if (model && !`${r.model || ""} ${r.response_model || ""}`.toLowerCase().includes(model)) return false;
  if (key && !(r.key || "").toLowerCase().includes(key)) return false;
  if (cache && r.cache !== cache) return false;
  if (status === "failed") return r.status >= 400 || r.outcome !== "ok";
  if (status) return String(r.status)[0] === status[0];
  return true;
}

function rowOf(r) {
  const tr = el("tr");
  tr.dataset.id = r.request_id;
  if (r.request_id === selectedId) tr.classList.add("selected");
  tr.append(
    el("td", when(r.time), "mono"),
    el("td", r.request_id.slice(0, 8), "mono"),
    el("td", r.endpoint),
  );
  const model = el("td");
  model.append(el("span", r.model || "—"));
  if (r.tier) {  // an auto router chose: the model that ran, its tier and why
    model.append(el("span", " → " + (r.response_model || "?")));
    const tier = el("span", r.tier, "tag tier");
    tier.title = r.auto_reason || "";
    model.append(tier);
  }
  if (r.provider) model.append(el("span", " · " + r.provider, "muted"));
  const status = el("td", r.outcome === "ok" ? r.status : `${r.status} ${r.outcome}`,
                    "s" + String(r.status)[0]);
  const tokens = (r.prompt_tokens === null && r.completion_tokens === null) ? "—" :
    `${int(r.prompt_tokens)} / ${int(r.completion_tokens)}`;
  const who = el("td");
  who.append(el("span", r.key || "—"));
  for (const tag of r.tags || []) who.append(el("span", tag, "tag"));
  tr.append(
    model, status,
    el("td", ms(r.latency_ms), "num"),
    el("td", r.stream ? ms(r.ttft_ms) : "—", "num"),
    el("td", tokens, "num"),
    el("td", costText(r), "num"),
    el("td", r.cache || "—", "cache-" + (r.cache || "none")),
    el("td", r.redactions || "—", "num"),
    el("td", r.attempts > 1 ? `${r.attempts} (${r.fallbacks.length} failed)` : r.attempts || "—",
       "num"),
    who,
  );
  return tr;
}

function costText(r) {
  let text = usd(r.cost_usd);
  if (r.cache === "HIT" && r.saved_usd) text += ` (saved ${usd(r.saved_usd)})`;
  if (r.saved_vs_baseline_usd !== null && r.saved_vs_baseline_usd !== undefined) {
    const saved = r.saved_vs_baseline_usd;
    text += saved >= 0 ? ` (−${usd(saved)} vs baseline)` : ` (+${usd(-saved)} vs baseline)`;
  }
  return text;
}

function render() {
  const body = document.querySelector("#requests tbody");
  const shown = rows.filter(matches);
  body.replaceChildren(...shown.map(rowOf));
  $("empty").hidden = rows.length > 0;
  $("shown").textContent = rows.length ? `${shown.length} of ${rows.length} shown` : "";
  $("counts").textContent = `${lastSeq.toLocaleString()} requests seen` +
    (skipped ? ` · ${skipped.toLocaleString()} not listed (traffic faster than the page)` : "");
}

function add(records) {
  for (const r of records) {
    rows.unshift(r);
    lastSeq = Math.max(lastSeq, r.seq);
  }
  rows.length = Math.min(rows.length, MAX_ROWS);
  render();
}

function connect() {
  if (source) source.close();
  source = new EventSource(`/sidecar/events?after=${lastSeq}`);
  source.onopen = () => setConn(paused ? "paused" : "live");
  source.onerror = () => setConn("reconnecting");  // EventSource retries on its own
  source.addEventListener("request", (event) => {
    const record = JSON.parse(event.data);
    if (record.seq <= lastSeq) return;
    if (paused) { pending.push(record); lastSeq = Math.max(lastSeq, record.seq); return; }
    add([record]);
  });
  source.addEventListener("skipped", (event) => { skipped += Number(event.data); render(); });
  // The sidecar restarted (or another replica answered): its ids start again from 1.
  source.addEventListener("reset", () => {
    lastSeq = 0; rows.length = 0; pending.length = 0; skipped = 0; render();
  });
  source.addEventListener("budget", () => refreshSoon("budgets"));
  // New requests move the spend, cache and latency panels: refreshed at most once a second.
  source.addEventListener("request", () => { refreshSoon("spend"); refreshSoon("latency"); });
}

function setConn(state) {
  const node = $("conn");
  node.dataset.state = state;
  node.textContent = state;
}

$("pause").addEventListener("click", () => {
  paused = !paused;
  $("pause").setAttribute("aria-pressed", String(paused));
  $("pause").textContent = paused ? "Resume" : "Pause";
  setConn(paused ? "paused" : "live");
  if (!paused && pending.length) { const p = pending; pending = []; add(p); }
});
for (const id of ["f-model", "f-status", "f-key", "f-cache"]) $(id).addEventListener("input", render);
$("filters").addEventListener("submit", (event) => event.preventDefault());

// ---- details, fetched on demand --------------------------------------------------------

document.querySelector("#requests tbody").addEventListener("click", async (event) => {
  const tr = event.target.closest("tr");
  if (!tr) return;
  selectedId = tr.dataset.id;
  render();
  const fields = $("detail-fields");
  fields.replaceChildren();
  $("detail").hidden = false;
  $("detail-title").textContent = `Request ${selectedId}`;
  let detail;
  try {
    detail = await getJSON(`/sidecar/requests/${encodeURIComponent(selectedId)}`);
  } catch (error) {
    fields.append(el("dt", "error"), el("dd", `not available (${error.status || error})`));
    return;
  }
  const skip = new Set(["prompt", "completion", "content_captured", "seq"]);
  for (const [name, value] of Object.entries(detail)) {
    if (skip.has(name)) continue;
    fields.append(el("dt", name), el("dd", typeof value === "object" && value !== null
      ? JSON.stringify(value) : value === null ? "—" : value));
  }
  const off = detail.content_captured ? "(not kept for this request)"
    : "Content capture is off (telemetry.capture_content), so prompts and completions are never kept.";
  $("detail-prompt").textContent = detail.prompt ? JSON.stringify(detail.prompt, null, 2) : off;
  $("detail-completion").textContent = detail.completion || (detail.prompt ? "" : off);
});
$("close-detail").addEventListener("click", () => { $("detail").hidden = true; selectedId = null; render(); });

// ---- panels ------------------------------------------------------------------------------

function table(headers, data) {
  const t = el("table", undefined, `cols${headers.length}`);
  const head = el("tr");
  for (const h of headers) head.append(el("td", h, "muted"));
  t.append(head);
  for (const cells of data) {
    const tr = el("tr");
    for (const [i, c] of cells.entries()) tr.append(el("td", c, i ? "num" : ""));
    t.append(tr);
  }
  return t;
}

function unavailable(node, error, what) {
  node.replaceChildren(el("p", error.status === 404 ? `${what} is not enabled on this sidecar.`
                                                    : `${what}: unavailable (${error.status || error}).`, "muted"));
}

const panels = {
  async budgets() {
    const node = $("budgets");
    try {
      const data = await getJSON("/sidecar/budgets");
      const budgets = Array.isArray(data) ? data : (data.budgets || []);
      if (!budgets.length) { node.replaceChildren(el("p", "No budgets configured.", "muted")); return; }
      const items = [];
      for (const b of budgets) {
        // A scoped budget (per key, user, tag or model) has one entry per value seen.
        const entries = b.scope !== "global" && (b.entries || []).length ? b.entries
          : [{value: null, spent_usd: b.spent_usd, remaining_usd: b.remaining_usd}];
        for (const entry of entries) {
          const div = el("div");
          const spent = entry.spent_usd ?? 0, limit = b.limit_usd ?? 0;
          const label = `${b.name}${entry.value ? " (" + entry.value + ")" : ""}: ` +
            `${usd(spent)} of ${usd(limit)} · ${b.window}${b.action === "warn" ? " · warn" : ""}`;
          div.append(el("div", label));
          const bar = el("div", undefined, "bar" + (spent >= limit ? " over" : ""));
          const fill = el("span");
          fill.style.width = `${limit ? Math.min(100, 100 * spent / limit) : 100}%`;
          bar.append(fill);
          div.append(bar);
          if (b.resets_at) div.append(el("div", `resets ${new Date(b.resets_at).toLocaleString()}`, "muted"));
          items.push(div);
        }
      }
      node.replaceChildren(...items);
    } catch (error) { unavailable(node, error, "Spend"); }
  },
  async spend() {
    const node = $("spend"), cacheNode = $("cache");
    const window = $("window").value;
    try {
      const data = await getJSON(`/sidecar/usage?window=${window}&by=model`);
      const rowsByModel = data.rows || [];
      node.replaceChildren(
        el("div", usd(data.total_cost_usd), "big"),
        rowsByModel.length ? table(["model", "reqs", "tokens in/out", "cost"], rowsByModel.map((r) =>
          [r.key, int(r.requests), `${int(r.prompt_tokens)} / ${int(r.completion_tokens)}`, usd(r.cost_usd)]))
          : el("p", "No spend in this window.", "muted"));
      const requests = rowsByModel.reduce((n, r) => n + (r.requests || 0), 0);
      const hits = rowsByModel.reduce((n, r) => n + (r.cache_hits || 0), 0);
      const saved = rowsByModel.reduce((n, r) => n + (r.saved_usd || 0), 0);
      cacheNode.replaceChildren(
        el("div", requests ? `${(100 * hits / requests).toFixed(1)} % hits` : "—", "big"),
        el("div", `${int(hits)} of ${int(requests)} requests · saved ${usd(saved)}`, "muted"));
    } catch (error) { unavailable(node, error, "Spend"); unavailable(cacheNode, error, "Spend"); }
  },
  async latency() {
    const node = $("latency");
    try {
      const data = await getJSON("/sidecar/stats");
      node.replaceChildren(data.models.length ? table(["model", "p50", "p95", "errors"], data.models.map((m) =>
        [m.model, ms(m.p50_ms), ms(m.p95_ms), `${(100 * m.error_rate).toFixed(1)} %`]))
        : el("p", "No requests in the last hour.", "muted"));
    } catch (error) { unavailable(node, error, "Statistics"); }
  },
  async providers() {
    const node = $("providers");
    try {
      const data = await getJSON("/sidecar/providers");
      const list = Array.isArray(data) ? data : (data.providers || []);
      node.replaceChildren(table(["provider", "breaker"], list.map((p) =>
        [p.name, `${(p.breaker && p.breaker.state) || "—"}${p.healthy === false ? " ⚠" : ""}`])));
    } catch (error) { unavailable(node, error, "Routing"); }
  },
};

const soon = new Set();
function refreshSoon(name) {
  if (soon.has(name)) return;
  soon.add(name);
  setTimeout(() => { soon.delete(name); panels[name](); }, 1000);
}
function refreshPanels() {
  if (document.visibilityState === "hidden") return;  // nobody looking: no admin calls
  for (const panel of Object.values(panels)) panel();
}
$("window").addEventListener("change", () => panels.spend());

// ---- start: what is already in memory, then the live stream ------------------------------

(async () => {
  try {
    const recent = await getJSON("/sidecar/requests?limit=" + MAX_ROWS);
    add(recent.requests);
    lastSeq = Math.max(lastSeq, recent.last);
  } catch (error) {
    setConn("reconnecting");
  }
  render();
  connect();
  refreshPanels();
  setInterval(refreshPanels, PANEL_REFRESH_MS);
  document.addEventListener("visibilitychange", refreshPanels);
})();
