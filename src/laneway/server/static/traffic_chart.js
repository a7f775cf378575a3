// The Traffic page's live chart, in plain SVG (svg_chart.js's pieces): per timeline bucket, the
// requests that finished in it stacked by lane (left axis), and the peak rate-limit use
// (right axis, 0-100%) as a line.
"use strict";

const trafficChart = (() => {
  const { node, niceMax, clock } = svgChart;
  const W = 900;
  const H = 220;
  const PAD = { l: 44, r: 44, t: 10, b: 24 };
  // At least a minute of buckets, so a fresh server does not draw one fat bar.
  const MIN_BUCKETS = 12;

  function peakUse(bucket) {
    const seen = Object.values(bucket.limit_use).filter((v) => v !== null);
    return seen.length ? Math.max(...seen) : null;
  }

  function axes(parts, reqMax, timeline, bucketS) {
    const ph = H - PAD.t - PAD.b;
    for (let i = 0; i <= 4; i++) {
      const y = PAD.t + (ph * i) / 4;
      parts.push(node("line", { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: "grid" }));
      const req = reqMax * (1 - i / 4);
      parts.push(node("text", { x: PAD.l - 6, y: y + 4, "text-anchor": "end", class: "tick" },
        req >= 10 || req === 0 ? String(Math.round(req)) : req.toFixed(1)));
      parts.push(node("text", { x: W - PAD.r + 6, y: y + 4, class: "tick" },
        Math.round(100 * (1 - i / 4)) + "%"));
    }
    if (!timeline.length) return;
    const last = timeline[timeline.length - 1].t + bucketS;
    parts.push(node("text", { x: W - PAD.r, y: H - 6, "text-anchor": "end", class: "tick" }, clock(last)));
    parts.push(node("text", { x: PAD.l, y: H - 6, class: "tick" }, clock(timeline[0].t)));
  }

  /** Redraw ``svg`` from a traffic report's timeline. */
  function draw(svg, timeline, bucketS) {
    const pw = W - PAD.l - PAD.r;
    const ph = H - PAD.t - PAD.b;
    const slots = Math.max(MIN_BUCKETS, timeline.length);
    const bw = pw / slots;
    const offset = slots - timeline.length; // the newest bucket is always on the right
    const totals = timeline.map((b) => b.requests.interactive + b.requests.background);
    const reqMax = niceMax(Math.max(1, ...totals));
    const y = (v) => PAD.t + ph - (v / reqMax) * ph;
    const parts = [];
    axes(parts, reqMax, timeline, bucketS);
    let drawn = 0;
    timeline.forEach((b, i) => {
      const x = PAD.l + (offset + i) * bw;
      let base = 0;
      for (const lane of ["interactive", "background"]) {
        const n = b.requests[lane];
        if (!n) continue;
        parts.push(node("rect", {
          x: x + bw * 0.1, width: Math.max(1, bw * 0.8), y: y(base + n), height: y(base) - y(base + n),
          class: "req " + lane, "data-t": b.t, "data-count": n,
        }));
        base += n;
        drawn += n;
      }
    });
    const use = [];
    timeline.forEach((b, i) => {
      const u = peakUse(b);
      if (u !== null) use.push((PAD.l + (offset + i + 0.5) * bw).toFixed(1) + "," + (PAD.t + ph - u * ph).toFixed(1));
    });
    if (use.length) parts.push(node("polyline", { points: use.join(" "), class: "use" }));
    svg.replaceChildren(...parts);
    svg.dataset.requests = String(drawn);
    svg.dataset.buckets = String(timeline.length);
    svg.dataset.usePoints = String(use.length);
  }

  return { draw };
})();
