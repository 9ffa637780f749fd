// Small line charts over the turns of a conversation, built with DOM calls
// (createElementNS), no library. A chart has up to two y axes: each series
// says which one it uses, so tokens/s and prompt tokens (or resident memory
// in MiB and a state in KiB) can share one chart and both stay readable.

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// Round tick values, 1/2/5 times a power of ten apart, from 0 to at least `max`.
export function niceTicks(max, target = 4) {
  if (!(max > 0)) max = 1;
  const raw = max / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw);
  const ticks = [];
  for (let t = 0; t < max + step * 0.999; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

export function formatBytes(bytes) {
  if (!(bytes >= 0)) return 'n/a';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return (u === 0 ? String(v) : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)) + ' ' + units[u];
}

function compact(v) {
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1).replace(/\.0$/, '') + 'M';
  if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(0) + 'k';
  return Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 1 : 0);
}

// spec: { title, xLabel, axes: { left: {label, scale?}, right?: {label, scale?} },
//         series: [{ name, axis: 'left'|'right', values: [number|null per turn], cls, format(v) }] }
// `scale` divides values for the axis ticks (e.g. 1048576 to show MiB).
// Returns a <figure> with the SVG and an HTML legend.
export function lineChart(spec) {
  const W = 320, H = 170;
  const pad = { left: 44, right: spec.axes.right ? 44 : 12, top: 12, bottom: 34 };
  const plotW = W - pad.left - pad.right, plotH = H - pad.top - pad.bottom;
  const n = Math.max(1, ...spec.series.map((s) => s.values.length));
  const x = (i) => pad.left + (n === 1 ? plotW / 2 : (i / (n - 1)) * plotW);

  const figure = document.createElement('figure');
  figure.className = 'chart';
  const caption = document.createElement('figcaption');
  caption.textContent = spec.title;
  figure.appendChild(caption);

  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': spec.title, class: 'chart-svg' });
  root.appendChild(svg('title', {}, spec.title));

  const scales = {};
  for (const side of ['left', 'right']) {
    const axis = spec.axes[side];
    if (!axis) continue;
    const k = axis.scale || 1;
    const values = spec.series.filter((s) => s.axis === side).flatMap((s) => s.values).filter((v) => v != null && isFinite(v));
    const ticks = niceTicks(Math.max(0, ...values) / k);
    const top = ticks[ticks.length - 1] || 1;
    scales[side] = (v) => pad.top + plotH - (v / k / top) * plotH;
    ticks.forEach((t) => {
      const y = pad.top + plotH - (t / top) * plotH;
      if (side === 'left') root.appendChild(svg('line', { x1: pad.left, x2: W - pad.right, y1: y, y2: y, class: 'grid' }));
      const tx = side === 'left' ? pad.left - 5 : W - pad.right + 5;
      root.appendChild(svg('text', { x: tx, y: y + 3, class: 'tick', 'text-anchor': side === 'left' ? 'end' : 'start' }, compact(t)));
    });
    const lx = side === 'left' ? 10 : W - 6;
    const ly = pad.top + plotH / 2;
    root.appendChild(svg('text', { x: lx, y: ly, class: 'axis-label', 'text-anchor': 'middle', transform: `rotate(-90 ${lx} ${ly})` }, axis.label));
  }
  // x axis: turns 1..n, at most ~8 labels.
  const every = Math.ceil(n / 8);
  for (let i = 0; i < n; i += every)
    root.appendChild(svg('text', { x: x(i), y: pad.top + plotH + 13, class: 'tick', 'text-anchor': 'middle' }, String(i + 1)));
  root.appendChild(svg('path', { d: `M${pad.left} ${pad.top} V${pad.top + plotH} H${W - pad.right}`, class: 'axis' }));
  root.appendChild(svg('text', { x: pad.left + plotW / 2, y: H - 4, class: 'axis-label', 'text-anchor': 'middle' }, spec.xLabel));

  for (const s of spec.series) {
    const y = scales[s.axis];
    const g = svg('g', { class: 'series ' + (s.cls || ''), 'data-series': s.name });
    // Gaps (turns without a value, e.g. a stopped reply) break the line.
    let d = '';
    let pen = false;
    s.values.forEach((v, i) => {
      if (v == null || !isFinite(v)) { pen = false; return; }
      d += (pen ? ' L' : ' M') + x(i).toFixed(1) + ' ' + y(v).toFixed(1);
      pen = true;
    });
    if (d) g.appendChild(svg('path', { d: d.trim(), class: 'line' }));
    s.values.forEach((v, i) => {
      if (v == null || !isFinite(v)) return;
      const dot = svg('circle', { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 2.6, class: 'dot' });
      dot.appendChild(svg('title', {}, `turn ${i + 1}: ${s.format ? s.format(v) : v}`));
      g.appendChild(dot);
    });
    root.appendChild(g);
  }
  figure.appendChild(root);

  const legend = document.createElement('div');
  legend.className = 'chart-legend';
  for (const s of spec.series) {
    const item = document.createElement('span');
    item.className = 'legend-item ' + (s.cls || '');
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    item.appendChild(swatch);
    item.appendChild(document.createTextNode(s.name + (s.axis === 'right' && spec.axes.left ? ' (right axis)' : '')));
    legend.appendChild(item);
  }
  figure.appendChild(legend);
  return figure;
}
