"use strict";
// Every member's score against step: one line per member, drawn downsampled to one
// min/max pair per pixel column (all points are kept for hovering), exploit jumps dashed.

PT.scores = { box: null, xs: null, ys: null, focus: null };

PT.scoreRange = function (D, log) {
  let lo = Infinity, hi = -Infinity, xmax = D.info.steps || 1;
  for (const m in D.steps) {
    const r = D.steps[m];
    for (let i = 0; i < r.v.length; i++) {
      const v = r.v[i];
      if (v === null || !Number.isFinite(v)) continue;
      if (log && !(v * log > 0)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (r.s.length && r.s[r.s.length - 1] > xmax) xmax = r.s[r.s.length - 1];
  }
  if (lo === Infinity) { lo = 0; hi = 1; }
  if (lo === hi) { const d = Math.abs(lo) * 0.05 || 0.5; lo -= d; hi += d; }
  if (!log) { const pad = (hi - lo) * 0.04; lo -= pad; hi += pad; }
  return { lo, hi, xmax };
};

// Whether a log scale can show the scores: 1 if all are positive, -1 if all are negative
// (drawn as -log10(-v), so that higher is still up), 0 otherwise.
PT.logSign = function (D) {
  let pos = 0, neg = 0, zero = 0;
  for (const m in D.steps) for (const v of D.steps[m].v) { if (v > 0) pos++; else if (v < 0) neg++; else if (v === 0) zero++; }
  if (zero) return 0;
  return pos && !neg ? 1 : neg && !pos ? -1 : 0;
};

PT.drawScores = function (D, canvas) {
  const logAsked = document.getElementById("yscale").value === "log";
  const log = logAsked ? PT.logSign(D) : 0;
  const note = document.getElementById("yscale-note");
  if (note) note.hidden = !(logAsked && !log);
  const { ctx, w, h } = PT.canvas(canvas, 360);
  const box = { l: 70, r: w - 14, t: 10, b: h - 40 };
  const rg = PT.scoreRange(D, log);
  const xs = PT.scale(0, rg.xmax, box.l, box.r, false);
  const ys = PT.scale(rg.lo, rg.hi, box.b, box.t, log);
  Object.assign(PT.scores, { box, xs, ys, log });
  PT.axes(ctx, box, xs, ys, "step", D.info.metric + (log ? " (log)" : ""));
  ctx.save();
  ctx.beginPath();
  ctx.rect(box.l, box.t, box.r - box.l, box.b - box.t);
  ctx.clip();
  const best = D.best ? D.best.member : null;
  const focus = PT.scores.focus;
  const ids = Object.keys(D.steps).map(Number);
  const many = ids.length > 40;
  for (const m of ids) {
    if (m === best || m === focus) continue;
    const alpha = focus !== null ? 0.15 : many ? 0.45 : 0.85;
    PT.drawLine(ctx, D.steps[m], PT.jumps(D, m), xs, ys, PT.color(m, alpha), many ? 1 : 1.4, log);
  }
  if (document.getElementById("jumps").checked) PT.drawJumps(ctx, D, xs, ys, log);
  for (const m of [focus, best]) {
    if (m === null || m === undefined || !D.steps[m]) continue;
    PT.drawLine(ctx, D.steps[m], PT.jumps(D, m), xs, ys, "#fff", 5, log);
    PT.drawLine(ctx, D.steps[m], PT.jumps(D, m), xs, ys, m === best ? "#111" : PT.color(m), 2.6, log);
  }
  ctx.restore();
};

// One member's line: a break where its state came from elsewhere (an exploit); within a
// pixel column, only the first, lowest, highest and last points.
PT.drawLine = function (ctx, r, jumps, xs, ys, color, width, log) {
  ctx.strokeStyle = color;
  ctx.lineWidth = width;
  ctx.lineJoin = "round";
  ctx.beginPath();
  let col = null, first = 0, lo = 0, hi = 0, last = 0, pen = false;
  const flush = () => {
    if (col === null) return;
    if (!pen) { ctx.moveTo(col, first); pen = true; } else ctx.lineTo(col, first);
    if (lo !== first) ctx.lineTo(col, lo);
    if (hi !== lo) ctx.lineTo(col, hi);
    if (last !== hi) ctx.lineTo(col, last);
  };
  for (let i = 0; i < r.s.length; i++) {
    const v = r.v[i];
    if (v === null || !Number.isFinite(v) || (log && !(v * log > 0))) { flush(); col = null; pen = false; continue; }
    if (jumps[i]) { flush(); col = null; pen = false; }
    const x = Math.round(xs(r.s[i])), y = ys(v);
    if (x !== col) {
      flush();
      col = x; first = lo = hi = last = y;
    } else {
      if (y < lo) lo = y;
      if (y > hi) hi = y;
      last = y;
    }
  }
  flush();
  ctx.stroke();
};

// Each exploit: dashed, from where the recipient was to the donor's checkpoint it took.
PT.drawJumps = function (ctx, D, xs, ys, log) {
  ctx.save();
  ctx.setLineDash([4, 3]);
  ctx.lineWidth = 1;
  const limit = D.events.length > 3000 ? D.events.length - 3000 : 0;
  for (let i = limit; i < D.events.length; i++) {
    const e = D.events[i];
    if (e.donor === null || e.donor_score === null || e.recipient_score === null) continue;
    if (log && !(e.donor_score * log > 0 && e.recipient_score * log > 0)) continue;
    const x0 = xs(e.step), y0 = ys(e.recipient_score), x1 = xs(e.donor_step), y1 = ys(e.donor_score);
    ctx.strokeStyle = PT.color(e.recipient, 0.8);
    ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke();
    ctx.fillStyle = PT.color(e.donor, 0.9);
    ctx.beginPath(); ctx.arc(x1, y1, 2.5, 0, 2 * Math.PI); ctx.fill();
  }
  ctx.restore();
};

// The recorded point nearest to (px, py) in pixels: {member, i, x, y, d}.
PT.nearest = function (D, px, py) {
  const { xs, ys, log } = PT.scores;
  if (!xs) return null;
  let best = null;
  for (const key in D.steps) {
    const m = Number(key), r = D.steps[m], jumps = PT.jumps(D, m);
    // Between two jumps the rows are in step order: search each run for the column.
    let start = 0;
    while (start < r.s.length) {
      let end = start;
      while (end + 1 < r.s.length && !jumps[end + 1]) end++;
      let a = start, b = end;
      while (a < b) { const mid = (a + b) >> 1; if (xs(r.s[mid]) < px) a = mid + 1; else b = mid; }
      for (const i of [a - 1, a]) {
        if (i < start || i > end) continue;
        const v = r.v[i];
        if (v === null || !Number.isFinite(v) || (log && !(v * log > 0))) continue;
        const x = xs(r.s[i]), y = ys(v), d = Math.hypot(x - px, y - py);
        if (!best || d < best.d) best = { member: m, i, x, y, d };
      }
      start = end + 1;
    }
  }
  return best;
};

PT.hoverScores = function (D, canvas, ev) {
  const tip = document.getElementById("tip");
  const rect = canvas.getBoundingClientRect();
  const px = ev.clientX - rect.left, py = ev.clientY - rect.top;
  const hit = PT.nearest(D, px, py);
  if (!hit || hit.d > 30) { tip.hidden = true; return; }
  const r = D.steps[hit.member];
  const h = PT.hyper(D, hit.member)[hit.i];
  tip.innerHTML = `<b>member ${hit.member}</b>${D.best && D.best.member === hit.member ? " &#9733; best" : ""}<br>` +
    `step ${r.s[hit.i]} &middot; ${PT.esc(D.info.metric)} ${PT.score(r.v[hit.i])}<br>` +
    `<span class="muted">${PT.esc(PT.hText(h))}</span>`;
  tip.hidden = false;
  tip.dataset.member = String(hit.member);
  const left = Math.min(hit.x + 14, rect.width - tip.offsetWidth - 4);
  tip.style.left = Math.max(0, left) + "px";
  tip.style.top = Math.max(0, hit.y - tip.offsetHeight - 10) + "px";
};

// Where member m's i-th recorded point is on the screen (for tests and for links).
PT.pointXY = function (D, m, i) {
  const { xs, ys } = PT.scores;
  const r = D.steps[m];
  if (!xs || !r || i >= r.s.length) return null;
  const rect = document.getElementById("scores").getBoundingClientRect();
  return { x: rect.left + xs(r.s[i]), y: rect.top + ys(r.v[i]) };
};

PT.legend = function (D) {
  const el = document.getElementById("legend");
  const ids = Object.keys(D.members).map(Number).sort((a, b) => a - b);
  const best = D.best ? D.best.member : null;
  const shown = ids.slice(0, 60);
  let html = shown.map((m) => `<button class="chip${m === PT.scores.focus ? " on" : ""}" data-m="${m}">` +
    `<i style="background:${m === best ? "#111" : PT.color(m)}"></i>${m === best ? "&#9733; " : ""}member ${m}</button>`).join("");
  if (ids.length > shown.length) html += `<span class="muted"> and ${ids.length - shown.length} more (click a row of the table to pick one)</span>`;
  el.innerHTML = html;
};
