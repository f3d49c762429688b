// llm-sidecar inspector, the Compare view: one prompt to several models at once through
// POST /sidecar/compare (stream: true), their answers filling in side by side as the chunks
// arrive, then each one's tokens, cost and latency. Uses app.js's helpers ($, el, usd, ms, int,
// getJSON). Like every call to models, it needs a local key when auth.required: the page asks
// for one and keeps it in memory only. Everything a model or a client wrote is set as text.
"use strict";

(() => {
  const chosen = [];            // model names, in the order they were added
  let maxModels = 8;
  let running = null;           // the AbortController of the compare in flight
  let listed = null;            // /v1/models' ids, asked once per page load (it is a request)

  // ---- views: Requests (panels and the list) or Compare -------------------------------------

  function showView(name) {
    const compare = name === "compare";
    document.querySelector(".panels").hidden = compare;
    $("requests-view").hidden = compare;
    $("compare").hidden = !compare;
    $("view-requests").setAttribute("aria-pressed", String(!compare));
    $("view-compare").setAttribute("aria-pressed", String(compare));
    if (compare) prepare();
  }
  $("view-requests").addEventListener("click", () => showView("requests"));
  $("view-compare").addEventListener("click", () => showView("compare"));

  // ---- choosing models: free text, suggestions from /v1/models and what the page has seen ----

  function renderChosen() {
    const node = $("c-chosen");
    node.replaceChildren(...chosen.map((model, i) => {
      const chip = el("span", model, "chip");
      const remove = el("button", "×", "chip-x");
      remove.type = "button";
      remove.setAttribute("aria-label", `remove ${model}`);
      remove.addEventListener("click", () => { chosen.splice(i, 1); renderChosen(); });
      chip.append(remove);
      return chip;
    }));
  }

  function addModel() {
    const input = $("c-model");
    const model = input.value.trim();
    input.value = "";
    if (!model || chosen.includes(model)) return;
    if (chosen.length >= maxModels) { status(`At most ${maxModels} models (compare.max_models).`); return; }
    chosen.push(model);
    renderChosen();
  }
  $("c-add").addEventListener("click", addModel);
  $("c-model").addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); addModel(); }
  });

  function keyHeaders() {
    const key = $("c-key").value.trim();
    return key ? {Authorization: `Bearer ${key}`} : {};
  }

  async function prepare() {
    try {
      const config = (await getJSON("/sidecar/config")).config;
      maxModels = (config.compare && config.compare.max_models) || maxModels;
      $("c-key-label").hidden = !(config.auth && config.auth.required);
    } catch (error) { /* the compare itself says what is wrong */ }
    if (listed === null) {
      listed = [];
      try {
        const response = await fetch("/v1/models", {credentials: "same-origin", headers: keyHeaders()});
        if (response.ok) listed = ((await response.json()).data || []).map((m) => m.id).filter(Boolean);
        else listed = null;  // e.g. the key is typed later: ask again next time
      } catch (error) { /* on a separate admin listener there is no /v1: the seen models only */ }
    }
    const names = new Set([...rows.map((r) => r.model).filter(Boolean), ...(listed || [])]);
    $("c-models").replaceChildren(...[...names].sort().map((name) => {
      const option = el("option");
      option.value = name;
      return option;
    }));
  }

  // ---- running a compare ------------------------------------------------------------------

  function status(text) { $("c-status").textContent = text; }

  function card(model, index) {
    const node = el("article", undefined, "c-card");
    node.dataset.index = String(index);
    const head = el("header");
    head.append(el("span", model, "c-model"), el("span", "…", "c-state"));
    node.append(head, el("pre", "", "c-text"), el("footer", "waiting for the first token", "muted c-facts"));
    return node;
  }

  function piece(chunk) {
    const choice = (chunk.choices || [])[0];
    if (choice) return (choice.delta && (choice.delta.content || "")) || choice.text || "";
    return chunk.type === "response.output_text.delta" ? chunk.delta || "" : "";
  }

  function finished(node, result) {
    const state = node.querySelector(".c-state");
    state.textContent = result.error ? `${result.status} ${result.error.code || ""}` : String(result.status);
    state.className = "c-state s" + String(result.status)[0];
    const text = node.querySelector(".c-text");
    if (result.error) { text.textContent = result.error.message || "failed"; text.classList.add("c-error"); }
    else if (result.content !== null) text.textContent = result.content;
    const usage = result.usage || {};
    const facts = [
      `${int(usage.prompt_tokens)} / ${int(usage.completion_tokens)} tokens`,
      usd(result.cost_usd), ms(result.latency_ms) + (result.ttft_ms !== null ? ` · first token ${ms(result.ttft_ms)}` : ""),
    ];
    if (result.cache === "HIT") facts.push("cache hit");
    if (result.provider) facts.push(result.provider);
    node.querySelector(".c-facts").textContent = facts.join(" · ");
  }

  function summarize(summary) {
    const parts = [];
    if (summary.cheapest) parts.push(`cheapest ${summary.cheapest}`);
    if (summary.fastest) parts.push(`fastest ${summary.fastest}`);
    if (summary.total_cost_usd !== null) parts.push(`total ${usd(summary.total_cost_usd)}`);
    parts.push(`wall ${ms(summary.wall_ms)}`);
    if (summary.failed.length) parts.push(`${summary.failed.length} failed`);
    $("c-summary").textContent = parts.join(" · ");
  }

  function handle(name, data, cards) {
    if (name === "chunk") {
      const text = cards[data.index].querySelector(".c-text");
      text.textContent += piece(data.chunk);
      cards[data.index].querySelector(".c-state").textContent = "streaming";
    } else if (name === "result") {
      finished(cards[data.index], data);
    } else if (name === "summary") {
      summarize(data);
    }
  }

  async function run(event) {
    event.preventDefault();
    if ($("c-model").value.trim()) addModel();
    const prompt = $("c-prompt").value;
    if (!chosen.length || !prompt.trim()) { status("Add at least one model and type a prompt."); return; }
    if (running) running.abort();
    const request = {messages: [{role: "user", content: prompt}]};
    const max = parseInt($("c-max").value, 10);
    if (max > 0) request.max_tokens = max;
    const models = [...chosen];
    const cards = models.map(card);
    $("c-results").replaceChildren(...cards);
    $("c-results").style.setProperty("--columns", String(Math.min(models.length, 4)));
    $("c-summary").textContent = "";
    status("running…");
    running = new AbortController();
    try {
      const response = await fetch("/sidecar/compare", {
        method: "POST", credentials: "same-origin", signal: running.signal,
        headers: {"Content-Type": "application/json", ...keyHeaders()},
        body: JSON.stringify({models, request, stream: true}),
      });
      if (!response.ok) {
        let message = `HTTP ${response.status}`;
        try { message = (await response.json()).error.message; } catch (error) { /* not JSON */ }
        status(response.status === 401 && $("c-key-label").hidden === false && !$("c-key").value
          ? "This sidecar needs a local key (auth.required): type one above." : message);
        $("c-results").replaceChildren();
        return;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, {stream: true});
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const raw = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = "message", data = "";
          for (const line of raw.split("\n")) {
            if (line.startsWith("event: ")) name = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (data && data !== "[DONE]") handle(name, JSON.parse(data), cards);
        }
      }
      status("done");
    } catch (error) {
      if (error.name !== "AbortError") status(`failed: ${error.message || error}`);
    } finally {
      running = null;
    }
  }
  $("compare-form").addEventListener("submit", run);
})();
