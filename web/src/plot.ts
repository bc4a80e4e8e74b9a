// Plots with uPlot (bundled; no CDN). A plot is drawn on a canvas, so every plot also
// carries its numbers in the DOM (data-* attributes and an optional table) for screen
// readers and for the browser test.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { h, fmtNum } from "./dom";

// Colour-blind-safe palette (Okabe–Ito), cycled.
const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];

export function colour(i: number): string {
  return PALETTE[i % PALETTE.length];
}

export interface Band {
  /** Series name the band belongs to. */
  name: string;
  lower: number[];
  upper: number[];
}

export interface PlotSpec {
  x: number[];
  series: Record<string, number[]>;
  bands?: Band[];
  xLabel?: string;
  yLabel?: string;
  title: string;
  width?: number;
  height?: number;
  logY?: boolean;
}

/** Draw a line plot into a new element; returns the element (already sized). */
export function linePlot(spec: PlotSpec): HTMLElement {
  const names = Object.keys(spec.series);
  const data: (number | null)[][] = [spec.x];
  const series: uPlot.Series[] = [{ label: spec.xLabel ?? "time" }];
  const bandsOpt: uPlot.Band[] = [];
  names.forEach((n, i) => {
    const c = colour(i);
    const band = spec.bands?.find((b) => b.name === n);
    if (band) {
      const lo = data.length;
      data.push(band.lower.map(clean));
      series.push({ label: `${n} lower`, stroke: c, width: 0, points: { show: false } });
      data.push(band.upper.map(clean));
      series.push({ label: `${n} upper`, stroke: c, width: 0, points: { show: false } });
      bandsOpt.push({ series: [lo + 1, lo], fill: c + "33" });
    }
    data.push(spec.series[n].map(clean));
    series.push({ label: n, stroke: c, width: 2, points: { show: spec.x.length <= 30 } });
  });
  const wrap = h("figure", {
    class: "plot",
    "data-series": String(names.length),
    "data-points": String(spec.x.length),
    "data-names": names.join(","),
    "data-bands": String(bandsOpt.length),
  });
  const width = spec.width ?? 860;
  const height = spec.height ?? 360;
  const opts: uPlot.Options = {
    title: spec.title,
    width,
    height,
    series,
    bands: bandsOpt,
    scales: { x: { time: false }, y: spec.logY ? { distr: 3 } : {} },
    axes: [
      { label: spec.xLabel ?? "time" },
      { label: spec.yLabel ?? "", values: (_u, vals) => vals.map((v) => fmtNum(v)) },
    ],
    legend: { live: true },
  };
  const u = new uPlot(opts, data as uPlot.AlignedData, wrap);
  // Band edges are series only so that uPlot can fill between them: keep them out of the legend.
  const legendRows = u.root.querySelectorAll<HTMLElement>(".u-legend .u-series");
  series.forEach((s, i) => {
    if (i > 0 && s.width === 0 && legendRows[i]) legendRows[i].style.display = "none";
  });
  wrap.appendChild(h("figcaption", { class: "sr-only" }, `${spec.title}: ${names.length} series over ${spec.x.length} points`));
  return wrap;
}

function clean(v: number): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** A table of the series (first, last and a sample of rows), shown under a <details>. */
export function dataTable(x: number[], series: Record<string, number[]>, maxRows = 200): HTMLElement {
  const names = Object.keys(series);
  const step = Math.max(1, Math.ceil(x.length / maxRows));
  const rows: HTMLElement[] = [];
  for (let i = 0; i < x.length; i += step) rows.push(row(i));
  if ((x.length - 1) % step !== 0 && x.length > 0) rows.push(row(x.length - 1));
  function row(i: number): HTMLElement {
    return h("tr", null, h("td", null, fmtNum(x[i])), names.map((n) => h("td", { "data-col": n }, fmtNum(series[n][i]))));
  }
  return h(
    "table",
    { class: "data" },
    h("thead", null, h("tr", null, h("th", { scope: "col" }, "time"), names.map((n) => h("th", { scope: "col" }, n)))),
    h("tbody", null, rows),
  );
}
