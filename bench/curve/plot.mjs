// The curve's plot, as SVG written by hand (no dependency): three panels drawn from the
// run's own figures (bench/curve/bench.mjs's data).
//   a. CPU per cycle vs processes: the agent's live cycle and process-exporter's scrape.
//   b. the agent's RSS (peak) vs processes (linear y from 0).
//   c. export CPU per cycle vs series, with the line a linear growth from the first point would
//      follow.

const W = 300;
const H = 240;
const M = { left: 52, right: 12, top: 30, bottom: 40 };

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');
const fmt = (v) => (v >= 1000 ? `${+(v / 1000).toFixed(1)}k` : `${+v.toPrecision(2)}`);

/** Powers of ten (and 2x, 5x between them when the range is short) covering [lo, hi]. */
function ticks(lo, hi) {
  const out = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of hi / lo < 100 ? [1, 2, 5] : [1]) {
      const v = m * 10 ** e;
      if (v >= lo / 1.0001 && v <= hi * 1.0001) out.push(v);
    }
  }
  return out;
}

/** Linear ticks from 0: 1, 2 or 5 x a power of ten, about five of them. */
function linearTicks(hi) {
  const raw = hi / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
  const out = [];
  for (let v = 0; v <= hi; v += step) out.push(v);
  return out;
}

/**
 * One panel at (x0, y0): `lines` = [{ label, color, dash?, points: [[x, y], ...] }], log x axis,
 * log y axis (or linear from 0 with `linearY`).
 */
function panel(x0, y0, title, xLabel, yLabel, lines, { linearY = false } = {}) {
  const pts = lines.flatMap((l) => l.points).filter(([x, y]) => x > 0 && y > 0);
  if (pts.length === 0) return '';
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  const [xlo, xhi] = [Math.min(...xs) / 1.3, Math.max(...xs) * 1.3];
  const [ylo, yhi] = linearY ? [0, Math.max(...ys) * 1.15] : [Math.min(...ys) / 1.5, Math.max(...ys) * 1.5];
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const sx = (x) => x0 + M.left + ((Math.log10(x) - Math.log10(xlo)) / (Math.log10(xhi) - Math.log10(xlo))) * pw;
  const sy = linearY
    ? (y) => y0 + M.top + ph - (y / yhi) * ph
    : (y) => y0 + M.top + ph - ((Math.log10(y) - Math.log10(ylo)) / (Math.log10(yhi) - Math.log10(ylo))) * ph;
  const o = [];
  o.push(`<text x="${x0 + W / 2}" y="${y0 + 16}" text-anchor="middle" font-weight="bold">${esc(title)}</text>`);
  o.push(`<rect x="${x0 + M.left}" y="${y0 + M.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  for (const t of ticks(xlo, xhi)) {
    const x = sx(t).toFixed(1);
    o.push(`<line x1="${x}" y1="${y0 + M.top}" x2="${x}" y2="${y0 + M.top + ph}" stroke="#eee"/>`);
    o.push(`<text x="${x}" y="${y0 + M.top + ph + 14}" text-anchor="middle">${fmt(t)}</text>`);
  }
  for (const t of linearY ? linearTicks(yhi) : ticks(ylo, yhi)) {
    const y = sy(t).toFixed(1);
    o.push(`<line x1="${x0 + M.left}" y1="${y}" x2="${x0 + M.left + pw}" y2="${y}" stroke="#eee"/>`);
    o.push(`<text x="${x0 + M.left - 4}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`);
  }
  o.push(`<text x="${x0 + M.left + pw / 2}" y="${y0 + H - 8}" text-anchor="middle">${esc(xLabel)}</text>`);
  o.push(`<text transform="translate(${x0 + 12},${y0 + M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  lines.forEach((l, i) => {
    const p = l.points.filter(([x, y]) => x > 0 && y > 0);
    if (p.length === 0) return;
    const d = p.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    o.push(`<polyline points="${d}" fill="none" stroke="${l.color}" stroke-width="1.6"${l.dash ? ' stroke-dasharray="4 3"' : ''}/>`);
    if (!l.dash) for (const [x, y] of p) o.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="${l.color}"/>`);
    const ly = y0 + M.top + 12 + i * 13;
    o.push(
      `<line x1="${x0 + M.left + 6}" y1="${ly}" x2="${x0 + M.left + 20}" y2="${ly}" stroke="${l.color}" stroke-width="1.6"${l.dash ? ' stroke-dasharray="4 3"' : ''}/>`,
    );
    o.push(`<text x="${x0 + M.left + 24}" y="${ly}" dominant-baseline="middle">${esc(l.label)}</text>`);
  });
  return o.join('\n');
}

export function renderSvg(data) {
  const single = data.curve.filter((p) => p.threads === 1);
  const byProcs = (f) => single.filter((p) => f(p) !== undefined).map((p) => [p.procs, f(p)]);
  const ex = data.exportRuns;
  const perCycleMs = (r) => (r.totalUsPerSeries * r.series) / 1000;
  const panels = [
    panel(0, 0, 'CPU per cycle (scrape)', 'processes', 'ms of CPU', [
      { label: 'agent cycle, all-in', color: '#1f77b4', points: byProcs((p) => p.cycleMs) },
      { label: 'process-exporter scrape', color: '#d62728', points: byProcs((p) => p.peScrapeMs) },
      { label: 'kernel floor (C: list /proc, GET each)', color: '#7f7f7f', points: byProcs((p) => p.floorMs) },
    ]),
    panel(W, 0, 'agent RSS', 'processes', 'MB (peak)', [{ label: 'agent VmHWM', color: '#2ca02c', points: byProcs((p) => p.hwmMb) }], { linearY: true }),
    panel(2 * W, 0, 'export CPU per cycle', 'series', 'ms of CPU', [
      { label: 'stage + OTLP encode + send', color: '#9467bd', points: ex.map((r) => [r.series, perCycleMs(r)]) },
      ...(ex.length
        ? [
            {
              label: 'linear from the first point',
              color: '#999',
              dash: true,
              points: ex.map((r) => [r.series, (perCycleMs(ex[0]) * r.series) / ex[0].series]),
            },
          ]
        : []),
    ]),
  ];
  const foot = `bench/curve, ${data.date.slice(0, 16).replace('T', ' ')} UTC${data.quick ? ' (quick)' : ''}; ${data.intervalS} s cycles; log axes (RSS: linear)`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${3 * W}" height="${H + 20}" viewBox="0 0 ${3 * W} ${H + 20}" font-family="sans-serif" font-size="10">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...panels,
    `<text x="${(3 * W) / 2}" y="${H + 12}" text-anchor="middle" fill="#555">${esc(foot)}</text>`,
    `</svg>`,
    '',
  ].join('\n');
}
