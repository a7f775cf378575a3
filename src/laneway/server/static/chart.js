// A two-series line chart on a canvas: jobs/s (left axis) and rate-limit use in %
// (right axis, 0-100 or more), against seconds since the page started watching.
"use strict";

const chart = (() => {
  function draw(canvas, points) {
    const ctx = canvas.getContext("2d");
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || canvas.width;
    const h = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(w * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const pad = { l: 44, r: 44, t: 10, b: 24 };
    const pw = w - pad.l - pad.r;
    const ph = h - pad.t - pad.b;
    const t0 = points.length ? points[0].t : 0;
    const tMax = Math.max(10, points.length ? points[points.length - 1].t - t0 : 0);
    const rateMax = niceMax(Math.max(1, ...points.map((p) => p.rate)));
    const useMax = Math.max(100, ...points.map((p) => (p.use === null ? 0 : p.use)));
    const x = (t) => pad.l + ((t - t0) / tMax) * pw;
    const yRate = (v) => pad.t + ph - (v / rateMax) * ph;
    const yUse = (v) => pad.t + ph - (v / useMax) * ph;

    ctx.font = "11px system-ui, sans-serif";
    ctx.strokeStyle = "#e3e6ea";
    ctx.fillStyle = "#667";
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = pad.t + (ph * i) / 4;
      ctx.beginPath();
      ctx.moveTo(pad.l, y);
      ctx.lineTo(pad.l + pw, y);
      ctx.stroke();
      ctx.textAlign = "right";
      ctx.fillText(fmtNum(rateMax * (1 - i / 4)), pad.l - 6, y + 4);
      ctx.textAlign = "left";
      ctx.fillText(Math.round(useMax * (1 - i / 4)) + "%", pad.l + pw + 6, y + 4);
    }
    ctx.textAlign = "center";
    ctx.fillText("0 s", pad.l, h - 6);
    ctx.fillText(Math.round(tMax) + " s", pad.l + pw, h - 6);

    line(ctx, points, (p) => [x(p.t), yRate(p.rate)], "#2563eb");
    line(ctx, points.filter((p) => p.use !== null), (p) => [x(p.t), yUse(p.use)], "#dc6803");
  }

  function line(ctx, points, at, color) {
    if (!points.length) return;
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    points.forEach((p, i) => {
      const [px, py] = at(p);
      if (i === 0) ctx.moveTo(px, py);
      else ctx.lineTo(px, py);
    });
    ctx.stroke();
  }

  function niceMax(v) {
    const e = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (v <= m * e) return m * e;
    return 10 * e;
  }

  function fmtNum(v) {
    return v >= 10 ? String(Math.round(v)) : v.toFixed(1);
  }

  return { draw };
})();
