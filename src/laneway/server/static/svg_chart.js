// Plain SVG charts built with DOM calls (no HTML strings): the pieces the Traffic page's
// and a run's charts share, and one chart of stacked bars (left axis) with a line
// (right axis) over time buckets.
"use strict";

const svgChart = (() => {
  const NS = "http://www.w3.org/2000/svg";

  function node(tag, attrs, text) {
    const n = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) n.setAttribute(key, String(value));
    if (text !== undefined) n.textContent = text;
    return n;
  }

  function niceMax(v) {
    const e = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (v <= m * e) return m * e;
    return 10 * e;
  }

  function tickText(v) {
    if (v === 0) return "0";
    if (v >= 1e6) return (v / 1e6).toFixed(v >= 1e7 ? 0 : 1) + "M";
    if (v >= 1e4) return Math.round(v / 1e3) + "k";
    if (v >= 10) return String(Math.round(v));
    return v >= 1 ? v.toFixed(1) : String(Number(v.toPrecision(2)));
  }

  /** A wall-clock time, with the date when the span is longer than a day. */
  function clock(t, long) {
    const d = new Date(t * 1000);
    const time = d.toLocaleTimeString("en-GB", { hour12: false });
    return long ? d.toLocaleDateString("en-GB", { day: "numeric", month: "short" }) + " " + time.slice(0, 5) : time;
  }

  /**
   * Draw into ``svg`` (viewBox 0 0 W H) one slot per bucket: ``bars`` stacked
   * ([{cls, value(b)}], left axis) and ``line`` ({cls, value(b) -> number|null, max,
   * label(v)}, right axis). ``buckets`` have ``t``; ``bucketS`` their width.
   */
  function draw(svg, buckets, bucketS, bars, line) {
    const box = svg.viewBox.baseVal;
    const W = box.width || 900;
    const H = box.height || 200;
    const PAD = { l: 48, r: 52, t: 10, b: 24 };
    const pw = W - PAD.l - PAD.r;
    const ph = H - PAD.t - PAD.b;
    const slots = Math.max(1, buckets.length);
    const bw = pw / slots;
    const totals = buckets.map((b) => bars.reduce((s, bar) => s + bar.value(b), 0));
    const barMax = niceMax(Math.max(1e-9, ...totals, 0) || 1);
    const values = buckets.map(line.value);
    const lineMax = line.max !== undefined ? line.max
      : niceMax(Math.max(1e-9, ...values.filter((v) => v !== null)));
    const y = (v, max) => PAD.t + ph - (v / max) * ph;
    const parts = [];
    for (let i = 0; i <= 4; i++) {
      const gy = PAD.t + (ph * i) / 4;
      parts.push(node("line", { x1: PAD.l, x2: W - PAD.r, y1: gy, y2: gy, class: "grid" }));
      parts.push(node("text", { x: PAD.l - 6, y: gy + 4, "text-anchor": "end", class: "tick" },
        tickText(barMax * (1 - i / 4))));
      parts.push(node("text", { x: W - PAD.r + 6, y: gy + 4, class: "tick" },
        line.label(lineMax * (1 - i / 4))));
    }
    if (buckets.length) {
      const long = buckets.length * bucketS > 86400;
      parts.push(node("text", { x: PAD.l, y: H - 6, class: "tick" }, clock(buckets[0].t, long)));
      parts.push(node("text", { x: W - PAD.r, y: H - 6, "text-anchor": "end", class: "tick" },
        clock(buckets[buckets.length - 1].t + bucketS, long)));
    }
    let drawn = 0;
    buckets.forEach((b, i) => {
      let base = 0;
      for (const bar of bars) {
        const v = bar.value(b);
        if (!v) continue;
        parts.push(node("rect", {
          x: PAD.l + i * bw + bw * 0.1, width: Math.max(1, bw * 0.8),
          y: y(base + v, barMax), height: Math.max(0.5, y(base, barMax) - y(base + v, barMax)),
          class: "col " + bar.cls, "data-t": b.t,
        }));
        base += v;
        drawn++;
      }
    });
    const points = [];
    values.forEach((v, i) => {
      if (v !== null) points.push((PAD.l + (i + 0.5) * bw).toFixed(1) + "," + y(v, lineMax).toFixed(1));
    });
    if (points.length) parts.push(node("polyline", { points: points.join(" "), class: "line " + line.cls }));
    svg.replaceChildren(...parts);
    svg.dataset.bars = String(drawn);
    svg.dataset.buckets = String(buckets.length);
    svg.dataset.linePoints = String(points.length);
  }

  return { node, niceMax, clock, draw };
})();
