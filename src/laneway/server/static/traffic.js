// The Traffic page: the queue per lane, the governor's limits and the live chart (GET
// /v1/laneway/traffic, every second), and the history of the chosen window from the
// ledger (GET /v1/laneway/traffic/history): its chart, the spend per key and per model,
// and the per-key table (text nodes only).
"use strict";

(() => {
  const { el, headers, errorMessage, fmt } = laneway;
  const $ = (id) => document.getElementById(id);
  const seconds = (s) => (s === null || s === undefined ? "–" : fmt.ms(s * 1000));
  const cell = (label, cls, text) => el("td", { class: cls, "data-label": label, text });
  let windowName = "hour";
  let historyTimer = null;

  // Who answered: the model asked for, or another (the local model), with what the asked
  // one would have cost.
  function answeredBy(r) {
    const by = r.answered_model || "";
    if (!by) return "–";
    if (r.asked_cost_usd === null || r.asked_cost_usd === undefined) return by;
    return by + " (on " + r.model + ": " + fmt.usd(r.asked_cost_usd) + ")";
  }

  function row(r) {
    return el("tr", { "data-key": r.key, "data-model": r.model, "data-lane": r.lane },
      cell("key", "who", r.key),
      cell("model", "model", r.model),
      cell("answered by", "answered", answeredBy(r)),
      el("td", { "data-label": "lane" }, el("span", { class: "badge " + r.lane, text: r.lane })),
      cell("requests", "requests", fmt.int(r.requests)),
      cell("errors", "errors", fmt.int(r.errors)),
      cell("tokens in / out", "tokens", fmt.int(r.input_tokens) + " / " + fmt.int(r.output_tokens)),
      cell("cache read / write", "cache", fmt.int(r.cache_read_input_tokens) + " / " + fmt.int(r.cache_creation_input_tokens)),
      cell("cost", "cost", fmt.usd(r.cost_usd) + (r.unpriced ? " + " + r.unpriced + " unpriced" : "")),
      cell("queued (mean / max)", "queued", seconds(r.queued_s_mean) + " / " + seconds(r.queued_s_max)),
      cell("TTFT (mean)", "ttft", seconds(r.ttft_s_mean)),
      cell("upstream errors absorbed", "upstream", fmt.int(r.upstream_errors)));
  }

  function spendRow(s) {
    return el("tr", { "data-name": s.name },
      cell("name", "name", s.name),
      cell("requests", "requests num", fmt.int(s.requests)),
      cell("of which batch", "batch-requests num", fmt.int(s.batch_requests)),
      cell("cost", "cost num", fmt.usd(s.cost_usd) + (s.unpriced ? " + " + s.unpriced + " unpriced" : "")),
      cell("of which batch", "batch-cost num", fmt.usd(s.batch_cost_usd)));
  }

  function limits(report) {
    const items = [];
    for (const [model, st] of Object.entries(report.limits)) {
      const kinds = Object.entries(st.buckets).map(([kind, b]) =>
        kind + " " + fmt.pct(b.use * 100) + " of " + fmt.int(b.limit) + "/min");
      const paused = st.paused_s > 0 ? " · background paused " + Math.ceil(st.paused_s) + " s" : "";
      items.push(el("li", { "data-model": model },
        el("strong", { text: model }), ": " + (kinds.length ? kinds.join(" · ") : "no limits known") + paused));
    }
    $("limits").replaceChildren(...items);
  }

  function show(report) {
    for (const lane of ["interactive", "background"]) {
      for (const what of ["waiting", "in_flight"]) {
        $("queue-" + lane + "-" + what).textContent = fmt.int(report.queue[lane][what]);
      }
    }
    limits(report);
    trafficChart.draw($("traffic-chart"), report.timeline, report.bucket_s);
    $("updated").textContent = "updated " + new Date(report.at * 1000).toLocaleTimeString("en-GB", { hour12: false });
    $("updated").classList.remove("error");
    $("traffic").dataset.state = "live";
  }

  function showHistory(h) {
    let spent = 0;
    const cumulative = h.timeline.map((b) => (spent += b.cost_usd));
    svgChart.draw($("history-chart"), h.timeline, h.bucket_s,
      [{ cls: "ok", value: (b) => b.requests - b.errors }, { cls: "bad", value: (b) => b.errors }],
      { cls: "cost", value: (b) => cumulative[h.timeline.indexOf(b)],
        label: (v) => "$" + (v >= 1 ? v.toFixed(2) : Number(v.toPrecision(2))) });
    $("spend-keys-body").replaceChildren(...h.spend_by_key.map(spendRow));
    $("spend-models-body").replaceChildren(...h.spend_by_model.map(spendRow));
    const rows = h.keys.map(row);
    $("keys-body").replaceChildren(...rows);
    $("keys-empty").hidden = rows.length > 0;
    $("history").dataset.window = h.window;
    $("history").dataset.state = "ready";
  }

  async function poll() {
    try {
      const response = await fetch("/v1/laneway/traffic", { headers: headers() });
      if (!response.ok) {
        $("updated").textContent = await errorMessage(response);
        $("updated").classList.add("error");
        return;
      }
      show(await response.json());
    } catch (_) {
      $("updated").textContent = "the server does not answer";
      $("updated").classList.add("error");
    }
  }

  async function pollHistory() {
    try {
      const response = await fetch("/v1/laneway/traffic/history?window=" + windowName, { headers: headers() });
      if (response.ok) showHistory(await response.json());
    } catch (_) { /* the live poll says the server is gone */ }
  }

  function choose(name) {
    windowName = name;
    document.querySelectorAll("[data-window]").forEach((b) => {
      b.setAttribute("aria-pressed", String(b.dataset.window === name));
    });
    $("history").dataset.state = "loading";
    clearInterval(historyTimer);
    pollHistory();
    // The ledger's sums cost more over a week: read them less often.
    historyTimer = setInterval(pollHistory, name === "hour" ? 2000 : 10000);
  }

  document.querySelectorAll("[data-window]").forEach((b) => {
    b.addEventListener("click", () => choose(b.dataset.window));
  });
  poll();
  setInterval(poll, 1000);
  choose("hour");
})();
