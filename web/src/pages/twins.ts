import { api, toSeries } from "../api";
import { h, mount, fmtNum, fmtTime, type Child } from "../dom";
import { items } from "../list";
import { linePlot, type Band } from "../plot";
import { errorBox, kv, loading, section } from "../ui";

interface TwinSummary {
  id: string;
  name?: string;
  patient?: string;
  model?: string;
  version?: string;
  created?: string;
}

type Json = Record<string, unknown>;

export function twinsPage(main: HTMLElement): void {
  const box = h("div", null, loading("Loading twins"));
  mount(main, h("h1", null, "Twins"), box);
  api<unknown>("/api/twins")
    .then((r) => {
      const ts = items<TwinSummary>(r);
      if (ts.length === 0) return mount(box, h("p", { class: "muted" }, "No twins yet."));
      mount(
        box,
        h(
          "table",
          { class: "grid" },
          h("thead", null, h("tr", null, ["twin", "patient", "model", "version", "created"].map((c) => h("th", { scope: "col" }, c)))),
          h(
            "tbody",
            null,
            ts.map((t) =>
              h(
                "tr",
                null,
                h("td", null, h("a", { href: `#/twins/${encodeURIComponent(t.id)}` }, t.name ?? t.id)),
                h("td", null, t.patient ?? "—"),
                h("td", null, t.model ? h("a", { href: `#/models/${encodeURIComponent(t.model)}` }, t.model) : "—"),
                h("td", { class: "mono" }, t.version ? t.version.slice(0, 12) : "—"),
                h("td", null, fmtTime(t.created)),
              ),
            ),
          ),
        ),
      );
    })
    .catch((e) => mount(box, errorBox(e)));
}

/**
 * Predictions come as `{time, series: {id: number[]}, lower?: {id: number[]}, upper?: {...}}`
 * or as `{time, series: {id: {median|mean|value, lower, upper}}}`; both become lines with bands.
 */
export function predictionPlot(pred: unknown, title: string): HTMLElement | null {
  if (!pred || typeof pred !== "object") return null;
  const p = pred as Json;
  const time = p.time as number[] | undefined;
  const raw = (p.series ?? p.predictions) as Json | undefined;
  if (!Array.isArray(time) || !raw || typeof raw !== "object") {
    try {
      const s = toSeries(pred);
      return linePlot({ x: s.time, series: s.series, title });
    } catch {
      return null;
    }
  }
  const series: Record<string, number[]> = {};
  const bands: Band[] = [];
  const lowerAll = (p.lower ?? {}) as Record<string, number[]>;
  const upperAll = (p.upper ?? {}) as Record<string, number[]>;
  for (const [name, v] of Object.entries(raw)) {
    if (Array.isArray(v)) {
      series[name] = v as number[];
      if (lowerAll[name] && upperAll[name]) bands.push({ name, lower: lowerAll[name], upper: upperAll[name] });
    } else if (v && typeof v === "object") {
      const o = v as Json;
      const mid = (o.median ?? o.mean ?? o.value ?? o.mid) as number[] | undefined;
      if (!Array.isArray(mid)) continue;
      series[name] = mid;
      const lo = (o.lower ?? o.lo ?? o.q05 ?? o.low) as number[] | undefined;
      const hi = (o.upper ?? o.hi ?? o.q95 ?? o.high) as number[] | undefined;
      if (Array.isArray(lo) && Array.isArray(hi)) bands.push({ name, lower: lo, upper: hi });
    }
  }
  if (Object.keys(series).length === 0) return null;
  return linePlot({ x: time, series, bands, title });
}

function paramsTable(ps: unknown): Child {
  if (!ps) return h("p", { class: "muted" }, "None recorded.");
  let rows: Array<{ id: string; value: unknown; sd?: unknown; lower?: unknown; upper?: unknown }> = [];
  if (Array.isArray(ps)) rows = ps as typeof rows;
  else if (typeof ps === "object")
    rows = Object.entries(ps as Json).map(([id, v]) => (v && typeof v === "object" ? { id, ...(v as Json) } : { id, value: v })) as typeof rows;
  const n = (x: unknown) => (typeof x === "number" ? fmtNum(x) : x === undefined || x === null ? "—" : String(x));
  return h(
    "table",
    { class: "grid" },
    h("thead", null, h("tr", null, ["parameter", "value", "sd", "lower", "upper"].map((c) => h("th", { scope: "col" }, c)))),
    h(
      "tbody",
      null,
      rows.map((r) =>
        h(
          "tr",
          null,
          h("td", { class: "mono" }, String(r.id ?? (r as Json).name ?? "")),
          h("td", { class: "num" }, n(r.value ?? (r as Json).estimate)),
          h("td", { class: "num" }, n(r.sd ?? (r as Json).std)),
          h("td", { class: "num" }, n(r.lower ?? (r as Json).ci_low)),
          h("td", { class: "num" }, n(r.upper ?? (r as Json).ci_high)),
        ),
      ),
    ),
  );
}

export function twinPage(main: HTMLElement, params: Record<string, string>): void {
  const id = params.id;
  mount(main, loading("Loading the twin"));
  api<Json>(`/api/twins/${encodeURIComponent(id)}`)
    .then((t) => {
      const predBox = h("div", { id: "twin-pred" });
      const first = predictionPlot(t.predictions ?? t.prediction, "Prediction (line: central estimate; band: uncertainty)");
      mount(predBox, first ?? h("p", { class: "muted" }, "No stored prediction; run one below."));
      const end = h("input", { id: "pred-end", type: "number", step: "any", value: "" });
      const points = h("input", { id: "pred-points", type: "number", min: "2", step: "1", value: "" });
      const msg = h("div", { "aria-live": "polite" });
      const btn = h("button", { type: "submit", class: "primary" }, "Predict");
      const model = t.model as string | undefined;
      const version = (t.version ?? t.model_version) as string | undefined;
      mount(
        main,
        h("p", { class: "crumbs" }, h("a", { href: "#/twins" }, "Twins"), " / ", id),
        h("h1", null, `Twin ${String(t.name ?? id)}`),
        kv([
          ["Patient", (t.patient as string) ?? null],
          ["Model", model ? h("a", { href: `#/models/${encodeURIComponent(model)}` }, model) : null],
          ["Version", version ? h("span", { class: "mono" }, version) : null],
          ["Created", fmtTime(t.created as string)],
        ]),
        section("Predictions with uncertainty bands", predBox),
        h(
          "form",
          {
            class: "sim",
            onsubmit: async (ev: Event) => {
              ev.preventDefault();
              const body: Json = {};
              if (end.value) body.end = Number(end.value);
              if (points.value) body.points = Number(points.value);
              btn.disabled = true;
              try {
                const r = await api<unknown>(`/api/twins/${encodeURIComponent(id)}/predict`, { body });
                const plot = predictionPlot(r, "Prediction (line: central estimate; band: uncertainty)");
                mount(predBox, plot ?? h("pre", null, JSON.stringify(r, null, 2)));
                mount(msg);
              } catch (e) {
                mount(msg, errorBox(e));
              } finally {
                btn.disabled = false;
              }
            },
          },
          h(
            "div",
            { class: "row" },
            h("div", { class: "field" }, h("label", { for: "pred-end" }, "End time (optional)"), end),
            h("div", { class: "field" }, h("label", { for: "pred-points" }, "Points (optional)"), points),
            h("div", { class: "field buttons" }, btn),
          ),
          msg,
        ),
        section("Fitted parameters and uncertainty", paramsTable(t.parameters ?? t.fitted_parameters)),
        t.uncertainty !== undefined && section("Uncertainty", h("pre", { class: "mono" }, JSON.stringify(t.uncertainty, null, 2))),
        section("Provenance", t.provenance ? h("pre", { class: "mono" }, JSON.stringify(t.provenance, null, 2)) : h("p", { class: "muted" }, "None recorded.")),
      );
    })
    .catch((e) => mount(main, h("h1", null, `Twin ${id}`), errorBox(e)));
}
