// Plots, drawn by the vendored uPlot (window.uPlot, vendor/uplot): canvas, about 50 kB, and fast enough to redraw
// tens of thousands of points on every live update. Two kinds: curves against a shared, sorted x (test time,
// cycle number), and x-y curves each with its own x (voltage profiles, Nyquist, CV), uPlot's "mode 2".
//
// Every plot is also registered in window.stationCharts[name] with the data it draws, so the browser tests (and a
// curious user in the console) can read exactly which points are on the screen.

import { el } from "./format.js";

/** Distinct colours (Tableau 10 and two more), in the order curves take them. */
export const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#2c3e50", "#b7950b"];

window.stationCharts = window.stationCharts || {};

const HEIGHT = 260;

function widthOf(container) {
  return Math.max(320, Math.floor(container.clientWidth || container.parentElement.clientWidth || 600));
}

/** Keep a plot as wide as its box: the page is usable from 1280 px up and on a wider lab screen. */
function follow(container, plot) {
  const observer = new ResizeObserver(() => {
    const width = widthOf(container);
    if (Math.abs(width - plot.width) > 2) plot.setSize({ width, height: HEIGHT });
  });
  observer.observe(container);
  return observer;
}

/** A scale's range with a margin, so points at the ends are drawn whole (uPlot's own fits the data exactly). */
function padded(u, min, max) {
  if (min === null || max === null) return [0, 1];
  const span = max - min || Math.abs(max) || 1;
  return [min - span * 0.04, max + span * 0.04];
}

/** A cycle-number scale: whole numbers only, with room for the points at both ends. */
function wholeRange(u, min, max) {
  if (min === null || max === null) return [0, 1];
  const pad = Math.max(0.5, (max - min) * 0.04);
  return [min - pad, max + pad];
}
const WHOLE_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

/** An x axis of cycle numbers: ticks on whole cycles only. */
function wholeAxis(label) {
  return axis(label, { incrs: WHOLE_INCRS, values: (u, splits) => splits.map((v) => String(Math.round(v))) });
}

function axis(label, extra = {}) {
  return { label, stroke: "#333", grid: { stroke: "#e3e6ea", width: 1 }, ticks: { stroke: "#c9ced4" }, ...extra };
}

/**
 * Curves against one sorted x. ``series``: [{label (with unit), scale, color, values}], ``x``: {label, values};
 * curves on a second scale get an axis on the right. Returns the chart (call .update(x, series values) later).
 */
export function lineChart(container, name, { title, x, series }) {
  const withPoints = series.some((s) => s.points);
  const scales = { x: x.whole ? { time: false, range: wholeRange } : withPoints ? { time: false, range: padded }
    : { time: false } };
  const axes = [x.whole ? wholeAxis(x.label) : axis(x.label)];
  const seen = [];
  for (const s of series) {
    if (seen.includes(s.scale)) continue;
    scales[s.scale] = { auto: true };
    axes.push(axis(s.axisLabel || s.label, seen.length ? { scale: s.scale, side: 1, grid: { show: false } }
      : { scale: s.scale }));
    seen.push(s.scale);
  }
  const opts = {
    title, width: widthOf(container), height: HEIGHT, scales, axes,
    series: [{ label: x.label }, ...series.map((s, i) => ({
      label: s.label, scale: s.scale, stroke: s.color || COLOURS[i], width: 1.5,
      points: { show: s.points ?? false, size: 5, fill: s.color || COLOURS[i] },
      value: (u, v) => (v === null || v === undefined ? "–" : v.toFixed(s.decimals ?? 4)),
    }))],
    cursor: { drag: { x: true, y: false } },
  };
  const data = [x.values, ...series.map((s) => s.values)];
  const plot = new window.uPlot(opts, data, container);
  const chart = {
    plot,
    kind: "line",
    labels: series.map((s) => s.label),
    update(xValues, values) {
      plot.setData([xValues, ...values]);
    },
  };
  return register(name, chart, follow(container, plot));
}

/**
 * x-y curves, each with its own x (uPlot mode 2). ``curves``: [{label, x: [...], y: [...], color, points, lines}].
 * uPlot's own point markers and legend do not follow x-y data, so markers are drawn as a series of their own (its
 * "points" path) and a small legend is drawn under the plot.
 */
export function xyChart(container, name, { title, xLabel, yLabel, curves, wholeX = false }) {
  const facets = [{ scale: "x", auto: true }, { scale: "y", auto: true }];
  const series = [{}];
  const data = [null];
  curves.forEach((c, i) => {
    const color = c.color || COLOURS[i % COLOURS.length];
    if (c.lines !== false) {
      series.push({ label: c.label, stroke: color, width: 1.5, dash: c.dash, facets,
        paths: window.uPlot.paths.linear(), points: { show: false } });
      data.push([c.x, c.y]);
    }
    if (c.points) {
      series.push({ label: `${c.label} (points)`, stroke: color, fill: color, width: 1, facets,
        paths: window.uPlot.paths.points(), points: { show: false, size: 6, width: 1 } });
      data.push([c.x, c.y]);
    }
  });
  const opts = {
    mode: 2, title, width: widthOf(container), height: HEIGHT,
    scales: { x: { time: false, auto: true, range: wholeX ? wholeRange : padded }, y: { auto: true, range: padded } },
    axes: [wholeX ? wholeAxis(xLabel) : axis(xLabel), axis(yLabel)],
    legend: { show: false },
    cursor: { drag: { x: true, y: true }, points: { show: false } },
    series,
  };
  const plot = new window.uPlot(opts, data, container);
  const observer = follow(container, plot);
  container.append(el("ul", { class: "legend" }, curves.map((c, i) => el("li", {},
    el("span", { class: `swatch${c.lines === false ? " dot" : ""}`,
      style: `background:${c.color || COLOURS[i % COLOURS.length]}` }), c.label))));
  return register(name, { plot, kind: "xy", labels: curves.map((c) => c.label), curves }, observer);
}

/** Name a chart (replacing, and freeing, an older one of the same name) and give it a destroy(). */
function register(name, chart, observer) {
  const old = window.stationCharts[name];
  if (old && old !== chart) old.destroy();
  chart.destroy = () => {
    observer.disconnect();
    chart.plot.destroy();
    if (window.stationCharts[name] === chart) delete window.stationCharts[name];
  };
  window.stationCharts[name] = chart;
  return chart;
}

/** Forget the plots of a page that is left (their canvases go with the page's DOM). */
export function clearCharts() {
  for (const chart of Object.values(window.stationCharts)) chart.destroy();
}
