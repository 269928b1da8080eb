"use strict";
// The family tree: one lane per member over steps, each exploit an arrow from the donor's
// lane (at the step of the checkpoint copied) to the recipient's, and the best member's
// ancestry (the line `poptune replay` retrains) in bold.

PT.tree = { edges: [] };

PT.drawTree = function (D, canvas) {
  const ids = Object.keys(D.members).map(Number).sort((a, b) => a - b);
  const n = Math.max(1, ids.length);
  const lane = Math.max(1, Math.min(22, Math.floor(640 / n)));
  const { ctx, w, h } = PT.canvas(canvas, Math.max(160, n * lane + 50));
  const box = { l: 70, r: w - 14, t: 8, b: h - 36 };
  const xmax = PT.scoreRange(D, false).xmax;
  const xs = PT.scale(0, xmax, box.l, box.r, false);
  const row = new Map(ids.map((m, k) => [m, k]));
  const yOf = (m) => box.t + ((row.has(m) ? row.get(m) : 0) + 0.5) * ((box.b - box.t) / n);
  PT.axes(ctx, box, xs, { ticks: () => [] }, "step", "");
  ctx.save();
  ctx.fillStyle = "#555"; ctx.textAlign = "right"; ctx.textBaseline = "middle";
  const every = Math.ceil(14 / lane);
  ids.forEach((m, k) => { if (k % every === 0) ctx.fillText("member " + m, box.l - 6, yOf(m)); });
  ctx.restore();
  // Lanes: each stretch a member trained on one state (broken where it copied another's).
  for (const m of ids) {
    const r = D.steps[m];
    if (!r) continue;
    ctx.strokeStyle = PT.color(m, 0.55);
    ctx.lineWidth = Math.max(1, Math.min(4, lane / 4));
    const jumps = PT.jumps(D, m);
    ctx.beginPath();
    let i = 0;
    while (i < r.s.length) {
      let j = i;
      while (j + 1 < r.s.length && !jumps[j + 1]) j++;
      ctx.moveTo(xs(r.s[i] - 1), yOf(m)); ctx.lineTo(xs(r.s[j]), yOf(m));
      i = j + 1;
    }
    ctx.stroke();
  }
  const anc = D.best && D.best.ancestry ? D.best.ancestry : { pieces: [], exploits: [] };
  // By seq and recipient: the exploits of one synchronous round share their seq.
  const onLine = new Set((anc.exploits || []).map(([s, r]) => s + ":" + r));
  const edges = [];
  const limit = D.events.length > 5000 ? D.events.length - 5000 : 0;
  for (let k = limit; k < D.events.length; k++) {
    const e = D.events[k];
    if (e.donor === null) continue;
    edges.push({ e, x0: xs(e.donor_step), y0: yOf(e.donor), x1: xs(e.step), y1: yOf(e.recipient), best: onLine.has(e.seq + ":" + e.recipient) });
  }
  for (const g of edges) if (!g.best) PT.arrow(ctx, g, PT.color(g.e.donor, 0.75), 1.2);
  // The ancestry: its stretches on the lanes, then its exploits.
  ctx.strokeStyle = "#111";
  ctx.lineWidth = Math.max(2.5, Math.min(5, lane / 3));
  ctx.beginPath();
  for (const [m, a, b] of anc.pieces) { ctx.moveTo(xs(a), yOf(m)); ctx.lineTo(xs(b), yOf(m)); }
  ctx.stroke();
  for (const g of edges) if (g.best) PT.arrow(ctx, g, "#111", 2.5);
  PT.tree.edges = edges;
  canvas.dataset.edges = String(edges.length);
  PT.exploitList(D);
};

PT.arrow = function (ctx, g, color, width) {
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.lineWidth = width;
  const mx = (g.x0 + g.x1) / 2 + (g.y1 > g.y0 ? 10 : -10);
  ctx.beginPath();
  ctx.moveTo(g.x0, g.y0);
  ctx.quadraticCurveTo(mx, (g.y0 + g.y1) / 2, g.x1, g.y1);
  ctx.stroke();
  const ang = Math.atan2(g.y1 - (g.y0 + g.y1) / 2, g.x1 - mx);
  const s = 4 + width;
  ctx.beginPath();
  ctx.moveTo(g.x1, g.y1);
  ctx.lineTo(g.x1 - s * Math.cos(ang - 0.45), g.y1 - s * Math.sin(ang - 0.45));
  ctx.lineTo(g.x1 - s * Math.cos(ang + 0.45), g.y1 - s * Math.sin(ang + 0.45));
  ctx.closePath();
  ctx.fill();
};

PT.eventText = function (D, e) {
  const sc = (x) => (x === null ? "-" : PT.score(x));
  return `step ${e.step}: member ${e.recipient} (${sc(e.recipient_score)}) took member ${e.donor}'s ` +
    `checkpoint at step ${e.donor_step} (${sc(e.donor_score)}); ${PT.hText(e.new_h)}`;
};

PT.hoverTree = function (D, canvas, ev) {
  const tip = document.getElementById("tree-tip");
  const rect = canvas.getBoundingClientRect();
  const px = ev.clientX - rect.left, py = ev.clientY - rect.top;
  let best = null;
  for (const g of PT.tree.edges) {
    for (const [x, y] of [[g.x1, g.y1], [(g.x0 + g.x1) / 2, (g.y0 + g.y1) / 2], [g.x0, g.y0]]) {
      const d = Math.hypot(x - px, y - py);
      if (!best || d < best.d) best = { g, d, x, y };
    }
  }
  if (!best || best.d > 14) { tip.hidden = true; return; }
  tip.innerHTML = PT.esc(PT.eventText(D, best.g.e)) + (best.g.best ? "<br><b>on the best member's line</b>" : "");
  tip.hidden = false;
  tip.style.left = Math.max(0, Math.min(best.x + 12, rect.width - tip.offsetWidth - 4)) + "px";
  tip.style.top = Math.max(0, best.y - tip.offsetHeight - 8) + "px";
};

// The exploits as text (the latest first), below the tree.
PT.exploitList = function (D) {
  const el = document.getElementById("exploits");
  if (!el) return;
  const ex = D.events.filter((e) => e.donor !== null);
  const latest = ex.slice(-200).reverse();
  el.querySelector("summary").textContent = `Exploits (${ex.length})` + (ex.length > 200 ? ", the latest 200" : "");
  el.querySelector("ol").innerHTML = latest.map((e) => `<li>${PT.esc(PT.eventText(D, e))}</li>`).join("");
};
