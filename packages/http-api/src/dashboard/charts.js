// Small line charts as hand-written SVG: a handful of series over the last hour, drawn from the
// samples the page keeps in memory. Colours are presentation attributes, not inline styles,
// so the page's CSP (style-src 'self') allows them.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const HEIGHT = 160;
const PAD = { left: 34, right: 8, top: 8, bottom: 18 };

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/** A y-axis top at or above `max` whose half is a whole number too (the charts count things). */
export function niceCeiling(max) {
  if (max <= 2) return 2;
  if (max <= 10) return 2 * Math.ceil(max / 2);
  const step = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (m * step >= max) return m * step;
  return 10 * step;
}

/**
 * Draws `series` ({label, colour, value(sample)}) over `samples` ({t, ...}, oldest first) for
 * the window [now - windowMs, now] into `container`, replacing what was there.
 */
export function drawLineChart(container, samples, series, now, windowMs) {
  container.replaceChildren();
  const root = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    preserveAspectRatio: "none",
    role: "img",
  });
  const top = niceCeiling(Math.max(0, ...samples.flatMap((s) => series.map((d) => d.value(s)))));
  const x = (t) => PAD.left + ((t - (now - windowMs)) / windowMs) * (WIDTH - PAD.left - PAD.right);
  const y = (v) => HEIGHT - PAD.bottom - (v / top) * (HEIGHT - PAD.top - PAD.bottom);

  for (const v of [0, top / 2, top]) {
    root.append(
      svg("line", {
        x1: PAD.left,
        x2: WIDTH - PAD.right,
        y1: y(v),
        y2: y(v),
        stroke: "#d9dde4",
        "stroke-width": 1,
      }),
    );
    const label = svg("text", {
      x: PAD.left - 4,
      y: y(v) + 4,
      "text-anchor": "end",
      "font-size": 11,
      fill: "#5c6473",
    });
    label.textContent = Number.isInteger(v) ? String(v) : v.toFixed(1);
    root.append(label);
  }
  const minutes = Math.round(windowMs / 60_000);
  for (const [t, text] of [
    [now - windowMs, `-${minutes} min`],
    [now - windowMs / 2, `-${minutes / 2} min`],
    [now, "now"],
  ]) {
    const label = svg("text", {
      x: x(t),
      y: HEIGHT - 4,
      "text-anchor": t === now ? "end" : t === now - windowMs ? "start" : "middle",
      "font-size": 11,
      fill: "#5c6473",
    });
    label.textContent = text;
    root.append(label);
  }

  for (const d of series) {
    if (samples.length === 0) continue;
    // A step line: a value holds until the next sample.
    const points = [];
    samples.forEach((s, i) => {
      const v = y(d.value(s));
      if (i > 0) points.push(`${x(s.t).toFixed(1)},${y(d.value(samples[i - 1])).toFixed(1)}`);
      points.push(`${x(s.t).toFixed(1)},${v.toFixed(1)}`);
    });
    const last = samples[samples.length - 1];
    points.push(`${x(now).toFixed(1)},${y(d.value(last)).toFixed(1)}`);
    const line = svg("polyline", {
      points: points.join(" "),
      fill: "none",
      stroke: d.colour,
      "stroke-width": 2,
      "vector-effect": "non-scaling-stroke",
    });
    line.dataset["series"] = d.label;
    // The latest value as a dot too: a page opened a moment ago has only a sliver of line.
    const dot = svg("circle", { cx: x(last.t), cy: y(d.value(last)), r: 3, fill: d.colour });
    root.append(line, dot);
  }

  const legend = document.createElement("div");
  legend.className = "legend";
  const latest = samples[samples.length - 1];
  for (const d of series) {
    const item = document.createElement("span");
    const swatch = svg("svg", { class: "swatch", viewBox: "0 0 10 10" });
    swatch.append(svg("rect", { width: 10, height: 10, fill: d.colour }));
    item.append(swatch, `${d.label}${latest === undefined ? "" : `: ${d.value(latest)}`}`);
    legend.append(item);
  }
  container.append(root, legend);
}
