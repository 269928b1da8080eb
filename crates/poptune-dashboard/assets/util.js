"use strict";
// Shared helpers: number formatting, colours, axes, canvases, and the hyperparameters each
// recorded step was trained with (rebuilt from the lineage, as poptune-view does).
const PT = {};

PT.esc = function (s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
};

// A score for a person: 6 significant digits, like poptune::format::score.
PT.score = function (x) {
  if (x === null || x === undefined || Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "inf";
  if (x === -Infinity) return "-inf";
  if (x === 0) return "0";
  const exp = Math.floor(Math.log10(Math.abs(Number(x.toPrecision(6)))));
  if (exp < -4 || exp >= 6) {
    const [m, e] = x.toExponential(5).split("e");
    return PT.trim(m) + "e" + Number(e);
  }
  return PT.trim(x.toFixed(Math.max(0, 5 - exp)));
};

PT.trim = function (s) {
  return s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s;
};

PT.value = function (v) {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : PT.score(v);
  if (v === null || v === undefined) return "-";
  return String(v);
};

PT.duration = function (s) {
  if (!(s >= 0)) return "-";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (h > 0) return `${h} h ${String(m).padStart(2, "0")} min`;
  if (m > 0) return `${m} min ${String(sec).padStart(2, "0")} s`;
  return `${sec} s`;
};

PT.hText = function (h) {
  if (!h) return "";
  return Object.keys(h).map((k) => `${k}=${PT.value(h[k])}`).join(", ");
};

// Distinct colours for members: golden-angle hues.
PT.color = function (i, alpha) {
  const hue = (i * 137.508) % 360;
  const light = 38 + (i % 3) * 8;
  return alpha === undefined ? `hsl(${hue},70%,${light}%)` : `hsla(${hue},70%,${light}%,${alpha})`;
};

// About n round ticks between lo and hi.
PT.ticks = function (lo, hi, n) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return out;
};

// A scale: value -> pixel, linear or log10 (of positive values, or of |v| for all-negative).
PT.scale = function (lo, hi, p0, p1, log) {
  let f = (v) => v;
  if (log) {
    const neg = hi <= 0;
    f = neg ? (v) => -Math.log10(-v) : (v) => Math.log10(v);
  }
  let a = f(lo), b = f(hi);
  if (!(b > a)) { a -= 0.5; b += 0.5; }
  const s = (v) => p0 + ((f(v) - a) / (b - a)) * (p1 - p0);
  s.log = log;
  s.ticks = (n) => {
    if (!log) return PT.ticks(lo, hi, n);
    const out = [];
    for (let e = Math.floor(Math.min(a, b)); e <= Math.ceil(Math.max(a, b)); e++) {
      const v = hi <= 0 ? -Math.pow(10, -e) : Math.pow(10, e);
      if (v >= lo && v <= hi) out.push(v);
    }
    return out.length >= 2 ? out : [lo, hi];
  };
  return s;
};

// Sizes a canvas to its box and the screen's pixel ratio; returns its context in CSS pixels.
PT.canvas = function (c, height) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(200, c.clientWidth || c.parentNode.clientWidth || 800);
  const h = height || c.clientHeight || 300;
  c.style.height = h + "px";
  if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
    c.width = Math.round(w * dpr);
    c.height = Math.round(h * dpr);
  }
  const ctx = c.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.font = "12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
  return { ctx, w, h };
};

// Axes with grid lines and labels.
PT.axes = function (ctx, box, xs, ys, xLabel, yLabel) {
  ctx.save();
  ctx.strokeStyle = "#e3e6ea";
  ctx.fillStyle = "#555";
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const t of ys.ticks(5)) {
    const y = Math.round(ys(t)) + 0.5;
    ctx.beginPath(); ctx.moveTo(box.l, y); ctx.lineTo(box.r, y); ctx.stroke();
    ctx.fillText(PT.score(t), box.l - 6, y);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const t of xs.ticks(8)) {
    const x = Math.round(xs(t)) + 0.5;
    ctx.beginPath(); ctx.moveTo(x, box.t); ctx.lineTo(x, box.b); ctx.stroke();
    ctx.fillText(PT.value(t), x, box.b + 5);
  }
  ctx.strokeStyle = "#9aa1a9";
  ctx.strokeRect(box.l + 0.5, box.t + 0.5, box.r - box.l, box.b - box.t);
  if (xLabel) ctx.fillText(xLabel, (box.l + box.r) / 2, box.b + 19);
  if (yLabel) {
    ctx.translate(12, (box.t + box.b) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = "middle";
    ctx.fillText(yLabel, 0, 0);
  }
  ctx.restore();
};

// The hyperparameters behind each of member m's rows: a member's event applies just before
// the first step recorded after the member was at event.step (and it counts on from
// event.donor_step). Returns an array of h objects, one per row (shared between the rows of
// a stretch). Kept until the member's rows or the events change.
PT.hyper = function (D, m) {
  const rows = D.steps[m];
  if (!rows) return [];
  const key = rows.s.length + ":" + D.events.length;
  const memo = D.hmemo[m];
  if (memo && memo.key === key) return memo.h;
  PT.walk(D, m, key);
  return D.hmemo[m].h;
};

// Whether each of member m's rows starts from a state copied from another member (an
// exploit, or a replacement): its line breaks there.
PT.jumps = function (D, m) {
  PT.hyper(D, m);
  return D.hmemo[m] ? D.hmemo[m].jump : [];
};

PT.walk = function (D, m, key) {
  const rows = D.steps[m];
  const own = D.events.filter((e) => e.recipient === m).sort((a, b) => a.seq - b.seq);
  let h = (D.info.initial && D.info.initial[m]) || {};
  let at = 0, next = 0;
  const out = new Array(rows.s.length);
  const jump = new Array(rows.s.length);
  for (let i = 0; i < rows.s.length; i++) {
    let copied = i > 0 && rows.s[i] <= rows.s[i - 1];
    while (next < own.length && own[next].step === at) {
      h = own[next].new_h;
      if (own[next].donor !== null) copied = true;
      at = own[next].donor_step;
      next++;
    }
    at = rows.s[i];
    out[i] = h;
    jump[i] = copied;
  }
  D.hmemo[m] = { key, h: out, jump };
};

// A numeric value for a hyperparameter (categories by their index in the space).
// The first line of a text, cut to `n` characters (a failure's reason holds the trainable's
// stderr: the whole of it is in the element's title and in the faults).
PT.firstLine = function (text, n) {
  const line = String(text || "").split("\n")[0];
  return line.length > n ? line.slice(0, n - 1) + "…" : line;
};

// A value of an ordered or choice parameter, numbers included, is drawn at its index in the
// list (the panel's axis is the list's).
PT.numeric = function (param, v) {
  if (param && param.values) {
    const i = param.values.findIndex((x) => x === v);
    return i >= 0 ? i : null;
  }
  if (typeof v === "number") return v;
  if (typeof v === "boolean") return v ? 1 : 0;
  return null;
};
