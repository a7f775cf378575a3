// The runs dashboard: the list of runs (polled), each a link to its own page
// (/runs/{id}), and the upload that starts one and opens its page.
"use strict";

(() => {
  const { el, headers, withToken, errorMessage, fmt } = laneway;
  const $ = (id) => document.getElementById(id);

  /** The address of a run's page (keeping the token). */
  function runPage(id) {
    return withToken("/runs/" + encodeURIComponent(id));
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
      const rows = data.map((run) => el("tr", { "data-run": run.id },
        el("td", { "data-label": "run" }, el("a", { class: "run-link", href: runPage(run.id), text: run.id })),
        el("td", { "data-label": "status" }, el("span", { class: "badge " + run.status, text: run.status })),
        el("td", { "data-label": "progress" }, bar(run.percent), el("span", { class: "pct", text: fmt.pct(run.percent) })),
        el("td", { "data-label": "done", text: run.done + " / " + run.total }),
        el("td", { "data-label": "errors", text: String(run.errored) }),
        el("td", { "data-label": "tokens", text: fmt.int(run.input_tokens + run.output_tokens) }),
        el("td", { "data-label": "cost", text: fmt.usd(run.cost_usd) }),
        el("td", { class: "model", "data-label": "model", text: (run.models || []).join("; ") || "–" })));
      $("runs-body").replaceChildren(...rows);
      $("runs-empty").hidden = rows.length > 0;
    } catch (_) { /* the next poll will tell */ }
  }

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
    window.location.assign(runPage(run.id));
  });

  refreshList();
  setInterval(refreshList, 2000);
  // The old address of a run (/runs?run=ID) opens its page.
  const wanted = new URLSearchParams(window.location.search).get("run");
  if (wanted) window.location.replace(runPage(wanted));
})();
