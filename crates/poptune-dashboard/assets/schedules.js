"use strict";
// Each hyperparameter's schedule: what every member trained with at each step, and the best
// member's schedule (poptune::lineage::schedule, what `poptune replay` retrains) in black.

PT.drawSchedules = function (D) {
  const host = document.getElementById("schedules");
  const space = D.info.space || {};
  const names = Object.keys(space).filter((k) => space[k].type !== "fixed");
  if (host.dataset.names !== names.join(",")) {
    host.innerHTML = names.map((n) => `<div class="sched"><div class="sched-name">${PT.esc(n)}</div>` +
      `<canvas data-param="${PT.esc(n)}"></canvas></div>`).join("") ||
      `<p class="muted">No hyperparameter changes: the space is fixed.</p>`;
    host.dataset.names = names.join(",");
  }
  for (const c of host.querySelectorAll("canvas")) PT.drawSchedule(D, c, c.dataset.param, space[c.dataset.param]);
};

PT.paramRange = function (D, name, param) {
  if (param.values) return { lo: -0.5, hi: param.values.length - 0.5, cat: true };
  let lo = param.low, hi = param.high;
  if (lo === undefined || hi === undefined) { lo = Infinity; hi = -Infinity; }
  for (const h of (D.info.initial || [])) { const v = PT.numeric(param, h[name]); if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); } }
  if (!(hi > lo)) { hi = lo + 1; }
  return { lo, hi, cat: false };
};

PT.drawSchedule = function (D, canvas, name, param) {
  const { ctx, w, h } = PT.canvas(canvas, 190);
  const box = { l: 70, r: w - 14, t: 8, b: h - 36 };
  const rg = PT.paramRange(D, name, param);
  const log = !!param.log && rg.lo > 0;
  const xmax = PT.scores.xs ? PT.scoreRange(D, false).xmax : D.info.steps || 1;
  const xs = PT.scale(0, xmax, box.l, box.r, false);
  const ys = PT.scale(rg.lo, rg.hi, box.b, box.t, log);
  if (rg.cat) {
    ys.ticks = () => param.values.map((_, i) => i);
  }
  PT.axes(ctx, box, xs, ys, "step", "");
  if (rg.cat) {
    // Category names instead of their indices.
    ctx.save(); ctx.fillStyle = "#fff"; ctx.fillRect(0, box.t - 2, box.l - 1, box.b - box.t + 8); ctx.restore();
    ctx.save(); ctx.fillStyle = "#555"; ctx.textAlign = "right"; ctx.textBaseline = "middle";
    param.values.forEach((v, i) => ctx.fillText(String(v).slice(0, 9), box.l - 6, ys(i)));
    ctx.restore();
  }
  ctx.save();
  ctx.beginPath(); ctx.rect(box.l - 2, box.t - 2, box.r - box.l + 4, box.b - box.t + 4); ctx.clip();
  const best = D.best ? D.best.member : null;
  const many = Object.keys(D.steps).length > 40;
  for (const key in D.steps) {
    const m = Number(key);
    PT.drawStretches(ctx, D, m, name, param, xs, ys, PT.color(m, many ? 0.3 : 0.6), many ? 1 : 1.5);
  }
  const segs = D.best && D.best.schedule ? D.best.schedule.segments : [];
  ctx.strokeStyle = "#111";
  ctx.lineWidth = 3;
  ctx.beginPath();
  let pen = false;
  for (const s of segs) {
    const v = PT.numeric(param, s.h[name]);
    if (v === null) { pen = false; continue; }
    const y = ys(v);
    if (!pen) { ctx.moveTo(xs(s.start), y); pen = true; } else ctx.lineTo(xs(s.start), y);
    ctx.lineTo(xs(s.end), y);
  }
  ctx.stroke();
  ctx.restore();
  canvas.dataset.best = best === null ? "" : String(best);
};

// Member m's stretches of constant hyperparameters, as horizontal lines over their steps.
PT.drawStretches = function (ctx, D, m, name, param, xs, ys, color, width) {
  const r = D.steps[m];
  const hs = PT.hyper(D, m);
  const jumps = PT.jumps(D, m);
  ctx.strokeStyle = color;
  ctx.lineWidth = width;
  ctx.beginPath();
  let i = 0;
  while (i < r.s.length) {
    let j = i;
    while (j + 1 < r.s.length && hs[j + 1] === hs[i] && !jumps[j + 1]) j++;
    const v = PT.numeric(param, hs[i] && hs[i][name]);
    if (v !== null) {
      const y = ys(v);
      ctx.moveTo(xs(r.s[i] - 1), y);
      ctx.lineTo(xs(r.s[j]), y);
    }
    i = j + 1;
  }
  ctx.stroke();
};
