// Inline SVG charts, drawn by hand: a line of rows done over time, bars of records per entity.
// Built with DOM calls (never markup from data), so no value can inject anything.

const NS = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text = null) {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

function frame(width, height, label) {
  return el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": label });
}

// samples: [{t: ms, rows: n}] in time order; total: the job's recordsCount (the y scale's top).
export function lineChart(samples, total, label) {
  const width = 340, height = 150, left = 44, bottom = 22, top = 8, right = 8;
  const svg = frame(width, height, label);
  const plotW = width - left - right, plotH = height - top - bottom;
  svg.append(el("line", { class: "axis", x1: left, y1: top, x2: left, y2: top + plotH }));
  svg.append(el("line", { class: "axis", x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH }));
  const maxRows = Math.max(total || 0, ...samples.map((s) => s.rows), 1);
  svg.append(el("text", { x: 2, y: top + 10 }, String(maxRows)));
  svg.append(el("text", { x: 2, y: top + plotH }, "0"));
  if (samples.length === 0) return svg;
  const t0 = samples[0].t;
  const span = Math.max(samples[samples.length - 1].t - t0, 1);
  svg.append(el("text", { x: left + plotW - 40, y: height - 6 }, `${(span / 1000).toFixed(1)} s`));
  const points = samples.map((s) => {
    const x = left + ((s.t - t0) / span) * plotW;
    const y = top + plotH - (s.rows / maxRows) * plotH;
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  if (points.length === 1) points.push(points[0]);
  svg.append(el("polyline", { class: "line", points: points.join(" ") }));
  return svg;
}

// counts: [{name, total}]
export function barChart(counts, label) {
  const rowH = 24, left = 110, width = 340, right = 60;
  const height = Math.max(counts.length, 1) * rowH + 8;
  const svg = frame(width, height, label);
  const max = Math.max(...counts.map((c) => c.total), 1);
  counts.forEach((c, i) => {
    const y = 4 + i * rowH;
    const w = ((width - left - right) * c.total) / max;
    svg.append(el("text", { x: 4, y: y + 15 }, c.name));
    svg.append(el("rect", { class: "bar", x: left, y: y + 3, width: Math.max(w, 1), height: rowH - 8 }));
    svg.append(el("text", { x: left + w + 4, y: y + 15 }, String(c.total)));
  });
  return svg;
}
