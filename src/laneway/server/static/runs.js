// The runs dashboard: the list of runs (polled), and one run's live progress over SSE
// (GET /v1/runs/{id}/events) with a chart of throughput and rate-limit use.
"use strict";

(() => {
  const { el, headers, withToken, errorMessage, fmt } = laneway;
  const $ = (id) => document.getElementById(id);
  let selected = null;
  let source = null;
  let points = [];

  function runPath(id, tail) {
    return "/v1/runs/" + encodeURIComponent(id) + (tail || "");
  }

  function bar(percent) {
    const fill = el("div", { class: "fill" });
    fill.style.width = Math.min(100, percent) + "%";
    return el("div", { class: "bar" }, fill);
  }

  async function refreshList() {
    try {
      const response = await fetch("/v1/runs", { headers: headers() });
      if (!response.ok) return;
      const { data } = await response.json();
      const rows = data.map((run) => {
        const tr = el("tr", { class: run.id === selected ? "selected" : "", "data-run": run.id },
          el("td", {}, el("button", { class: "link", type: "button", text: run.id })),
          el("td", {}, el("span", { class: "badge " + run.status, text: run.status })),
          el("td", {}, bar(run.percent), el("span", { class: "pct", text: fmt.pct(run.percent) })),
          el("td", { text: run.done + " / " + run.total }),
          el("td", { text: String(run.errored) }),
          el("td", { text: fmt.int(run.input_tokens + run.output_tokens) }),
          el("td", { text: fmt.usd(run.cost_usd) }),
          el("td", { class: "model", text: (run.models || []).join("; ") || "–" }));
        tr.querySelector("button").addEventListener("click", () => select(run.id));
        return tr;
      });
      $("runs-body").replaceChildren(...rows);
      $("runs-empty").hidden = rows.length > 0;
    } catch (_) { /* the next poll will tell */ }
  }

  function show(p) {
    $("detail-status").textContent = p.status + (p.live ? " (live)" : "");
    $("detail-status").className = "badge " + p.status;
    $("detail-bar").style.width = Math.min(100, p.percent) + "%";
    $("detail-percent").textContent = fmt.pct(p.percent);
    $("detail-done").textContent = fmt.int(p.done) + " / " + fmt.int(p.total);
    $("detail-errors").textContent = fmt.int(p.errored) + (p.canceled ? " (+" + p.canceled + " canceled)" : "");
    $("detail-rate").textContent = fmt.rate(p.rate_per_s) + " jobs/s";
    $("detail-tokens").textContent = fmt.int(p.input_tokens) + " in / " + fmt.int(p.output_tokens) + " out";
    $("detail-cost").textContent = fmt.usd(p.cost_usd);
    $("detail-model").textContent = (p.models || []).join("\n") || "–";
    $("detail-limit").textContent = p.limit_use === null ? "no limits known" : fmt.pct(p.limit_use * 100);
    const models = Object.values(p.governor || {});
    const conc = models.map((m) => m.concurrency).filter((c) => c !== undefined);
    $("detail-flight").textContent = fmt.int(p.in_flight) + " / " + (conc.length ? conc.join(", ") : "–");
    $("detail-cancel").disabled = !p.live && p.pending === 0;
    points.push({ t: p.at, rate: p.rate_per_s, use: p.limit_use === null ? null : p.limit_use * 100 });
    if (points.length > 600) points.shift();
    chart.draw($("chart"), points);
  }

  function select(id) {
    if (source) source.close();
    selected = id;
    points = [];
    $("detail").hidden = false;
    $("detail").dataset.run = id;
    $("detail").dataset.state = "connecting";
    $("detail-title").textContent = id;
    $("detail-results").href = withToken(runPath(id, "/results"));
    source = new EventSource(withToken(runPath(id, "/events")));
    source.addEventListener("progress", (ev) => {
      $("detail").dataset.state = "live";
      show(JSON.parse(ev.data));
    });
    source.addEventListener("end", (ev) => {
      show(JSON.parse(ev.data));
      $("detail").dataset.state = "ended";
      source.close();
      source = null;
      refreshList();
    });
    source.onerror = () => {
      if (source && source.readyState === EventSource.CLOSED) $("detail").dataset.state = "error";
    };
    refreshList();
  }

  $("detail-cancel").addEventListener("click", async () => {
    if (!selected) return;
    const response = await fetch(runPath(selected, "/cancel"), { method: "POST", headers: headers() });
    if (!response.ok) $("detail-status").textContent = await errorMessage(response);
    refreshList();
  });

  $("upload").addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = $("file").files[0];
    const status = $("upload-status");
    if (!file) {
      status.textContent = "choose a JSONL file first";
      return;
    }
    const form = new FormData();
    form.append("file", file);
    const query = new URLSearchParams();
    if ($("run-name").value.trim()) query.set("name", $("run-name").value.trim());
    if ($("run-model").value.trim()) query.set("model", $("run-model").value.trim());
    status.textContent = "uploading…";
    const response = await fetch("/v1/runs" + (query.toString() ? "?" + query : ""), {
      method: "POST", body: form, headers: headers(),
    });
    if (!response.ok) {
      status.textContent = await errorMessage(response);
      status.classList.add("error");
      return;
    }
    status.classList.remove("error");
    const run = await response.json();
    status.textContent = "started " + run.id;
    select(run.id);
  });

  refreshList();
  setInterval(refreshList, 2000);
  const wanted = new URLSearchParams(window.location.search).get("run");
  if (wanted) select(wanted);
})();
