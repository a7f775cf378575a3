// The Traffic page: polls GET /v1/laneway/traffic every second and shows the queue per
// lane, the governor's limits, the chart and the per-key table (text nodes only).
"use strict";

(() => {
  const { el, headers, errorMessage, fmt } = laneway;
  const $ = (id) => document.getElementById(id);
  const seconds = (s) => (s === null || s === undefined ? "–" : fmt.ms(s * 1000));

  // Who answered: the model asked for, or another (the local model), with what the asked
  // one would have cost.
  function answeredBy(r) {
    const by = (r.answered_by || []).join(", ");
    if (!by) return "–";
    if (r.asked_cost_usd === null || r.asked_cost_usd === undefined) return by;
    return by + " (on " + r.model + ": " + fmt.usd(r.asked_cost_usd) + ")";
  }

  function row(r) {
    const meanQueued = r.requests ? r.queued_s_total / r.requests : null;
    return el("tr", { "data-key": r.key, "data-model": r.model, "data-lane": r.lane },
      el("td", { text: r.key }),
      el("td", { text: r.model }),
      el("td", { class: "answered", text: answeredBy(r) }),
      el("td", {}, el("span", { class: "badge " + r.lane, text: r.lane })),
      el("td", { class: "requests", text: fmt.int(r.requests) }),
      el("td", { class: "errors", text: fmt.int(r.errors) + (r.client_closed ? " (" + r.client_closed + " left)" : "") }),
      el("td", { class: "tokens", text: fmt.int(r.input_tokens) + " / " + fmt.int(r.output_tokens) }),
      el("td", { class: "cache", text: fmt.int(r.cache_read_input_tokens) + " / " + fmt.int(r.cache_creation_input_tokens) }),
      el("td", { class: "cost", text: fmt.usd(r.cost_usd) + (r.unpriced && r.cost_usd !== null ? " + " + r.unpriced + " unpriced" : "") }),
      el("td", { class: "queued", text: seconds(meanQueued) + " / " + seconds(r.queued_s_max) }),
      el("td", { class: "ttft", text: seconds(r.ttft_s_p50) + " / " + seconds(r.ttft_s_p95) }),
      el("td", { class: "upstream", text: fmt.int(r.upstream_errors) }));
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
    const rows = report.keys.map(row);
    $("keys-body").replaceChildren(...rows);
    $("keys-empty").hidden = rows.length > 0;
    $("updated").textContent = "updated " + new Date(report.at * 1000).toLocaleTimeString("en-GB", { hour12: false });
    $("updated").classList.remove("error");
    $("traffic").dataset.state = "live";
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

  poll();
  setInterval(poll, 1000);
})();
