// One run's page (/runs/{id}): its progress (live over SSE while it runs), its charts
// and its jobs, all read from the ledger, so a finished run shows the same whoever
// watched it; and the actions that do something for this run (results, re-send, cancel).
"use strict";

(() => {
  const { el, headers, withToken, errorMessage, fmt } = laneway;
  const $ = (id) => document.getElementById(id);
  const runId = decodeURIComponent(window.location.pathname.replace(/^\/runs\//, ""));
  const PAGE = 50;
  let info = null;
  let live = false;
  let source = null;
  let timer = null;
  let cursor = { after: null, before: null };
  let shown = { first: null, last: null, prevMore: false, nextMore: false };

  const runPath = (tail) => "/v1/runs/" + encodeURIComponent(runId) + (tail || "");

  async function getJSON(path) {
    const response = await fetch(path, { headers: headers() });
    if (!response.ok) throw new Error(await errorMessage(response));
    return response.json();
  }

  function enable(button, on) {
    button.disabled = !on;
  }

  function showActions() {
    const p = info;
    const failedIngest = p.status === "ingest_failed";
    const results = $("detail-results");
    if (p.done > 0 && !failedIngest) {
      results.href = withToken(runPath("/results"));
      results.removeAttribute("aria-disabled");
    } else {
      results.removeAttribute("href");
      results.setAttribute("aria-disabled", "true");
    }
    const closed = ["done", "canceled", "ingest_failed"].includes(p.status);
    enable($("detail-cancel"), live || (p.pending > 0 && !closed));
    const resend = $("detail-resend");
    resend.hidden = !!p.gateway_batch;
    enable(resend, !live && !!p.resendable && !["canceled", "ingest_failed", "running"].includes(p.status));
    resend.textContent = "Re-send " + (p.resendable ? fmt.int(p.resendable) + " " : "") + "errored/expired";
    $("detail-model").textContent = (p.models || []).join("\n") || "–";
    const note = p.gateway_batch ? "A Message Batch made through the gateway: its results are final." : p.note;
    $("detail-note").hidden = !note;
    $("detail-note").textContent = note || "";
    $("detail-note").classList.toggle("error", failedIngest);
  }

  function showProgress(p) {
    $("detail-status").textContent = p.status + (p.live ? " (live)" : "");
    $("detail-status").className = "badge " + p.status;
    $("detail-bar").style.width = Math.min(100, p.percent) + "%";
    $("detail-percent").textContent = fmt.pct(p.percent);
    $("detail-done").textContent = fmt.int(p.done) + " / " + fmt.int(p.total);
    $("detail-errors").textContent = fmt.int(p.errored) + (p.expired ? " (+" + p.expired + " expired)" : "")
      + (p.canceled ? " (+" + p.canceled + " canceled)" : "");
    $("detail-tokens").textContent = fmt.int(p.input_tokens) + " in / " + fmt.int(p.output_tokens) + " out";
    $("detail-cost").textContent = fmt.usd(p.cost_usd);
    if (p.models && p.models.length) $("detail-model").textContent = p.models.join("\n");
    if (p.live && p.rate_per_s !== null && p.rate_per_s !== undefined) {
      $("detail-rate-label").textContent = "rate (now)";
      $("detail-rate").textContent = fmt.rate(p.rate_per_s) + " jobs/s";
    }
    if (p.governor !== undefined) {
      $("detail-limit").textContent = p.limit_use === null ? "no limits known" : fmt.pct(p.limit_use * 100);
      const conc = Object.values(p.governor || {}).map((m) => m.concurrency).filter((c) => c !== undefined);
      $("detail-flight").textContent = fmt.int(p.in_flight) + " / " + (conc.length ? conc.join(", ") : "–");
    }
  }

  function showTimeline(tl) {
    const b = tl.buckets;
    const perS = (n) => n / tl.bucket_s;
    svgChart.draw($("throughput-chart"), b, tl.bucket_s,
      [{ cls: "ok", value: (x) => perS(x.succeeded) }, { cls: "bad", value: (x) => perS(x.errored) }],
      { cls: "use", max: 100, value: (x) => (x.limit_use === null ? null : x.limit_use * 100),
        label: (v) => Math.round(v) + "%" });
    let spent = 0;
    const cumulative = b.map((x) => (spent += x.cost_usd));
    svgChart.draw($("usage-chart"), b, tl.bucket_s,
      [{ cls: "tokens", value: (x) => x.input_tokens + x.output_tokens }],
      { cls: "cost", value: (x) => cumulative[b.indexOf(x)],
        label: (v) => "$" + (v >= 1 ? v.toFixed(2) : Number(v.toPrecision(2))) });
    $("samples-note").hidden = tl.samples || !b.length;
    if (!live) {
      $("detail-rate-label").textContent = "rate (mean)";
      $("detail-rate").textContent = fmt.rate(tl.rate_per_s) + " jobs/s";
      if (tl.samples && $("detail-limit").textContent === "–") {
        const peak = Math.max(...b.map((x) => (x.limit_use === null ? 0 : x.limit_use)));
        $("detail-limit").textContent = "peak " + fmt.pct(peak * 100);
      }
      if (tl.samples && $("detail-flight").textContent === "–") {
        $("detail-flight").textContent = "peak " + fmt.int(Math.max(...b.map((x) => x.in_flight || 0)));
      }
    }
    $("detail").dataset.chart = "drawn";
    performance.mark("laneway:chart");  // read by bench/run_page.py
  }

  /** Read the run and its timeline again (both at once); the run's info is returned. */
  async function refresh() {
    const failed = (exc) => { $("detail-action").textContent = String(exc.message || exc); };
    // Each part is drawn as it comes: the charts need not wait for the run's counts.
    const timeline = getJSON(runPath("/timeline")).then(showTimeline, failed);
    try {
      info = await getJSON(runPath());
      showActions();
      performance.mark("laneway:run");
    } catch (exc) {
      failed(exc);
    }
    await timeline;
    return info;
  }

  // -- jobs ---------------------------------------------------------------------------
  function jobRow(j) {
    const tr = el("tr", { "data-job": j.custom_id, "data-status": j.status },
      el("td", { class: "seq", "data-label": "#", text: String(j.seq + 1) }),
      el("td", { "data-label": "id" }, el("button", { class: "link", type: "button", text: j.custom_id })),
      el("td", { "data-label": "status" }, el("span", { class: "badge " + j.status, text: j.status })),
      el("td", { "data-label": "attempts", text: String(j.attempts) }),
      el("td", { "data-label": "tokens", text: fmt.int(j.input_tokens) + " / " + fmt.int(j.output_tokens) }),
      el("td", { "data-label": "cost", text: j.cost_usd === null ? "–" : fmt.usd(j.cost_usd) }),
      el("td", { class: "err", "data-label": "error", text: j.error_type ? j.error_type + ": " + (j.error_message || "") : "" }));
    tr.querySelector("button").addEventListener("click", () => openJob(j.custom_id));
    return tr;
  }

  async function loadJobs() {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if ($("jobs-status").value) q.set("status", $("jobs-status").value);
    if ($("jobs-search").value.trim()) q.set("search", $("jobs-search").value.trim());
    if (cursor.after !== null) q.set("after", String(cursor.after));
    if (cursor.before !== null) q.set("before", String(cursor.before));
    $("jobs-table").dataset.state = "loading";
    let page;
    try {
      page = await getJSON(runPath("/jobs?" + q));
    } catch (exc) {
      $("jobs-range").textContent = String(exc.message || exc);
      return;
    }
    const back = cursor.before !== null;
    shown = {
      first: page.first_seq, last: page.last_seq,
      prevMore: back ? page.has_more : cursor.after !== null && cursor.after >= 0,
      nextMore: back ? true : page.has_more,
    };
    $("jobs-body").replaceChildren(...page.data.map(jobRow));
    $("jobs-empty").hidden = page.data.length > 0;
    enable($("jobs-prev"), shown.prevMore && page.data.length > 0);
    enable($("jobs-next"), shown.nextMore && page.data.length > 0);
    $("jobs-range").textContent = page.data.length
      ? "#" + (page.first_seq + 1) + " – #" + (page.last_seq + 1) : "";
    $("jobs-table").dataset.state = "ready";
    performance.mark("laneway:jobs");
  }

  function answerText(result) {
    if (!result) return "(no result yet)";
    if (result.type !== "succeeded") return "(" + result.type + ")";
    const blocks = (result.message && result.message.content) || [];
    const text = blocks.filter((b) => b.type === "text").map((b) => b.text).join("");
    return text || JSON.stringify(blocks, null, 2);
  }

  async function openJob(customId) {
    let j;
    try {
      j = await getJSON(runPath("/jobs/" + encodeURIComponent(customId)));
    } catch (exc) {
      $("detail-action").textContent = String(exc.message || exc);
      return;
    }
    $("job").hidden = false;
    $("job").dataset.job = j.custom_id;
    $("job-title").textContent = j.custom_id + " · line " + j.line;
    $("job-status").textContent = j.status;
    $("job-status").className = "badge " + j.status;
    $("job-attempts").textContent = j.attempts + (j.rate_limited ? " (+" + j.rate_limited + " held by 429)" : "");
    $("job-usage").textContent = fmt.int(j.input_tokens) + " / " + fmt.int(j.output_tokens)
      + (j.cache_read_input_tokens ? " (cache read " + fmt.int(j.cache_read_input_tokens) + ")" : "");
    $("job-cost").textContent = j.cost_usd === null ? (j.priced === false ? "unknown price" : "–") : fmt.usd(j.cost_usd);
    $("job-when").textContent = (j.mode || "–") + (j.finished_at ? " · " + new Date(j.finished_at * 1000).toLocaleString("en-GB") : "");
    $("job-error").hidden = !j.error_type;
    $("job-error").textContent = j.error_type ? j.error_type + ": " + (j.error_message || "") : "";
    $("job-answer").textContent = answerText(j.result);
    $("job-request").textContent = JSON.stringify(j.params, null, 2);
    $("job").scrollIntoView({ block: "nearest" });
  }

  function restartJobs() {
    cursor = { after: null, before: null };
    loadJobs();
  }

  $("jobs-status").addEventListener("change", restartJobs);
  let typing = null;
  $("jobs-search").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(restartJobs, 250);
  });
  $("jobs-filter").addEventListener("submit", (ev) => { ev.preventDefault(); restartJobs(); });
  $("jobs-next").addEventListener("click", () => { cursor = { after: shown.last, before: null }; loadJobs(); });
  $("jobs-prev").addEventListener("click", () => { cursor = { after: null, before: shown.first }; loadJobs(); });
  $("job-close").addEventListener("click", () => { $("job").hidden = true; });

  // -- actions ------------------------------------------------------------------------
  async function act(button, tail, done) {
    button.disabled = true;
    const response = await fetch(runPath(tail), { method: "POST", headers: headers() });
    $("detail-action").classList.toggle("error", !response.ok);
    $("detail-action").textContent = response.ok ? done(await response.json()) : await errorMessage(response);
    live = response.ok;  // the run changed: read it again when its events end
    follow();
  }

  $("detail-cancel").addEventListener("click", () =>
    act($("detail-cancel"), "/cancel", (r) => "canceled " + fmt.int(r.canceled) + " jobs"));
  $("detail-resend").addEventListener("click", () =>
    act($("detail-resend"), "/resend", (r) => "sending " + fmt.int(r.resent) + " jobs again"));

  // -- following the run --------------------------------------------------------------
  function follow() {
    if (source) source.close();
    $("detail").dataset.state = "connecting";
    source = new EventSource(withToken(runPath("/events")));
    source.addEventListener("progress", (ev) => {
      const p = JSON.parse(ev.data);
      live = p.live || !AT_REST.includes(p.status);
      $("detail").dataset.state = "live";
      showProgress(p);
      if (!timer) timer = setInterval(() => { refresh(); }, 2000);
    });
    source.addEventListener("end", async (ev) => {
      source.close();
      source = null;
      const changed = live || timer !== null;
      live = false;
      clearInterval(timer);
      timer = null;
      showProgress(JSON.parse(ev.data));
      await opened;
      if (changed) await Promise.all([refresh(), loadJobs()]);  // else what opened is final
      $("detail").dataset.state = "ended";
    });
    source.onerror = () => {
      if (source && source.readyState === EventSource.CLOSED) $("detail").dataset.state = "error";
    };
  }

  // A run at rest is read once; one that something may be working on is followed.
  const AT_REST = ["done", "canceled", "stopped", "failed", "ingest_failed"];
  $("detail-title").textContent = runId;
  document.title = "laneway · " + runId;
  const opened = Promise.all([refresh(), loadJobs()]);
  opened.then(([run]) => {
    if (run && !run.live && AT_REST.includes(run.status)) {
      showProgress(run);
      $("detail").dataset.state = "ended";
    } else follow();
  });
})();
