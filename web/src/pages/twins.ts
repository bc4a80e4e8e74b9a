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
export function predictionPlot(pred: unknown, title: string, width?: number): HTMLElement | null {
  if (!pred || typeof pred !== "object") return null;
  const p = pred as Json;
  const time = p.time as number[] | undefined;
  const raw = (p.series ?? p.predictions) as Json | undefined;
  if (!Array.isArray(time) || !raw || typeof raw !== "object") {
    try {
      const s = toSeries(pred);
      return linePlot({ x: s.time, series: s.series, title, width });
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
      const mid = (o.fitted ?? o.median ?? o.mean ?? o.value ?? o.mid) as number[] | undefined;
      if (!Array.isArray(mid)) continue;
      series[name] = mid;
      const lo = (o.lower ?? o.lo ?? o.q05 ?? o.low) as number[] | undefined;
      const hi = (o.upper ?? o.hi ?? o.q95 ?? o.high) as number[] | undefined;
      if (Array.isArray(lo) && Array.isArray(hi)) bands.push({ name, lower: lo, upper: hi });
    }
  }
  if (Object.keys(series).length === 0) return null;
  return linePlot({ x: time, series, bands, title, width });
}

/**
 * Fitted parameters with their uncertainty: the server stores a log-scale standard
 * deviation per parameter, so the 90 % range is value · exp(±1.645 sd).
 */
function paramsTable(ps: unknown, unc: unknown, detail?: unknown): Child {
  // A twin fitted by vht-twin records each parameter's 95 % interval in its provenance.
  const ci = new Map<string, [number, number]>();
  if (Array.isArray(detail))
    for (const d of detail as Json[]) if (typeof d.id === "string" && Array.isArray(d.ci95)) ci.set(d.id, d.ci95 as [number, number]);
  if (!ps || typeof ps !== "object") return h("p", { class: "muted" }, "None recorded.");
  const sds = (unc && typeof unc === "object" ? unc : {}) as Record<string, unknown>;
  const rows = Array.isArray(ps)
    ? (ps as Json[]).map((r) => ({ id: String(r.id ?? r.name ?? ""), value: r.value as number }))
    : Object.entries(ps as Json).map(([id, v]) => ({ id, value: (typeof v === "number" ? v : (v as Json)?.value) as number }));
  return h(
    "table",
    { class: "grid" },
    h(
      "thead",
      null,
      h("tr", null, ["parameter", "fitted value", "log-scale sd", ci.size ? "95 % interval" : "90 % range"].map((c) => h("th", { scope: "col" }, c))),
    ),
    h(
      "tbody",
      null,
      rows.map((r) => {
        const sd = typeof sds[r.id] === "number" ? (sds[r.id] as number) : null;
        const c = ci.get(r.id);
        const range = c
          ? `${fmtNum(c[0])} – ${fmtNum(c[1])}`
          : sd !== null && typeof r.value === "number"
            ? `${fmtNum(r.value * Math.exp(-1.645 * sd))} – ${fmtNum(r.value * Math.exp(1.645 * sd))}`
            : "—";
        return h("tr", null, h("td", { class: "mono" }, r.id), h("td", { class: "num" }, fmtNum(r.value)), h("td", { class: "num" }, fmtNum(sd)), h("td", { class: "num" }, range));
      }),
    ),
  );
}

/** The provenance: what the twin was fitted to (files with their hashes) and how. */
function provenance(prov: Json): HTMLElement {
  const inputs = Array.isArray(prov.inputs) ? (prov.inputs as Json[]) : [];
  const fit = prov.fit && typeof prov.fit === "object" ? (prov.fit as Json) : null;
  return h(
    "div",
    null,
    inputs.length > 0 &&
      h(
        "table",
        { class: "grid" },
        h("thead", null, h("tr", null, ["input", "role", "SHA-256"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", null, inputs.map((i) => h("tr", null, h("td", { class: "mono" }, String(i.file ?? "")), h("td", null, String(i.role ?? "")), h("td", { class: "mono", title: String(i.sha256 ?? "") }, String(i.sha256 ?? "").slice(0, 16))))),
      ),
    fit &&
      kv(
        Object.entries(fit)
          .filter(([, v]) => typeof v !== "object")
          .map(([k, v]) => [k, typeof v === "number" ? fmtNum(v) : String(v)]),
      ),
    typeof prov.measurements === "number" && h("p", null, `Fitted to ${prov.measurements} measurements.`),
    h("details", null, h("summary", null, "Full provenance (JSON)"), h("pre", { class: "mono" }, JSON.stringify(prov, null, 2))),
  );
}

export function twinPage(main: HTMLElement, params: Record<string, string>): void {
  const id = params.id;
  mount(main, loading("Loading the twin"));
  api<Json>(`/api/twins/${encodeURIComponent(id)}`)
    .then((t) => {
      const predBox = h("div", { id: "twin-pred", "aria-live": "polite" });
      const prov = (t.provenance ?? {}) as Json;
      const defaultEnd = typeof prov.end === "number" ? prov.end : 100;
      const num = (fid: string, label: string, value: number, attrs: Json = {}) => {
        const input = h("input", { id: fid, type: "number", step: "any", value: String(value), required: true, ...attrs });
        return { input, el: h("div", { class: "field" }, h("label", { for: fid }, label), input) };
      };
      const end = num("pred-end", "End time", defaultEnd);
      const points = num("pred-points", "Points", 101, { min: 2, step: 1 });
      const samples = num("pred-samples", "Samples for the band", 50, { min: 0, max: 500, step: 1 });
      const seed = num("pred-seed", "Seed", 1, { min: 0, step: 1 });
      const msg = h("div", { "aria-live": "polite" });
      const btn = h("button", { type: "submit", class: "primary" }, "Predict");
      const model = t.model as string | undefined;
      const version = (t.version ?? t.model_version) as string | undefined;

      // The server predicts every output of the twin (model species, or the observables of
      // a twin fitted by vht-twin); the boxes choose which are drawn, first few ticked.
      const selectBox = h("fieldset", { class: "select" }, h("legend", null, "Show"));
      const ticks = new Map<string, HTMLInputElement>();
      let last: Json | null = null;
      let caption: HTMLElement | null = null;

      function draw() {
        if (!last) return;
        const all = (last.series ?? {}) as Json;
        for (const name of Object.keys(all)) {
          if (ticks.has(name)) continue;
          const cb = h("input", { type: "checkbox", id: `pred-sel-${name}`, value: name, checked: ticks.size < 3, onchange: draw });
          ticks.set(name, cb);
          selectBox.appendChild(h("label", { for: `pred-sel-${name}` }, cb, " ", name));
        }
        const shown: Json = {};
        const units = (last.units ?? {}) as Json;
        for (const [name, v] of Object.entries(all)) if (ticks.get(name)?.checked) shown[units[name] ? `${name} (${String(units[name])})` : name] = v;
        const band = Array.isArray(last.band) ? `${Math.round(Number(last.band[0]) * 1000) / 10}–${Math.round(Number(last.band[1]) * 1000) / 10} %` : "";
        const plot = predictionPlot({ ...last, series: shown }, `Prediction: fitted (line) and ${band || "uncertainty"} band`, Math.max(400, (predBox.clientWidth || 800) - 16));
        mount(predBox, plot ?? h("p", { class: "muted" }, Object.keys(all).length ? "Tick an output to plot it." : "The prediction has no outputs."), caption);
      }

      async function predict(ev?: Event) {
        ev?.preventDefault();
        const body: Json = { end: Number(end.input.value), points: Math.round(Number(points.input.value)), samples: Math.round(Number(samples.input.value)), seed: Math.round(Number(seed.input.value)) };
        btn.disabled = true;
        mount(predBox, loading("Predicting"));
        try {
          const r = await api<Json>(`/api/twins/${encodeURIComponent(id)}/predict`, { body });
          last = r;
          caption =
            typeof r.samples === "number"
              ? h("p", { class: "muted", id: "pred-info" }, `${r.samples} parameter samples (seed ${String(r.seed ?? body.seed)})${r.failed_samples ? `, ${String(r.failed_samples)} failed to simulate` : ""}.`)
              : null;
          draw();
          mount(msg);
        } catch (e) {
          mount(predBox);
          mount(msg, errorBox(e));
        } finally {
          btn.disabled = false;
        }
      }

      mount(
        main,
        h("p", { class: "crumbs" }, h("a", { href: "#/twins" }, "Twins"), " / ", id),
        h("h1", null, `Twin ${String(t.name ?? id)}`),
        kv([
          ["Patient", (t.patient as string) ?? null],
          ["Model", model ? h("a", { href: `#/models/${encodeURIComponent(model)}` }, model) : null],
          ["Version", version ? h("span", { class: "mono" }, version) : null],
          ["Project", (t.project as string) ?? null],
          ["Created", fmtTime(t.created as string)],
        ]),
        section(
          "Predictions with uncertainty bands",
          h(
            "form",
            { class: "sim", onsubmit: predict },
            h(
              "div",
              { class: "sim-body" },
              h("div", { class: "sim-main" }, h("div", { class: "row" }, end.el, points.el, samples.el, seed.el, h("div", { class: "field buttons" }, btn)), msg, predBox),
              h("div", { class: "sim-inputs" }, selectBox),
            ),
          ),
        ),
        section("Fitted parameters and uncertainty", paramsTable(t.parameters ?? t.fitted_parameters, t.uncertainty, prov.parameters)),
        section(
          "Provenance",
          Object.keys(prov).length > 0 ? provenance(prov) : h("p", { class: "muted" }, "None recorded."),
        ),
      );
      const stored = predictionPlot(t.predictions ?? t.prediction, "Stored prediction");
      if (stored) mount(predBox, stored);
      else predict();
    })
    .catch((e) => mount(main, h("h1", null, `Twin ${id}`), errorBox(e)));
}
