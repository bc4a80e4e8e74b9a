import { api, authorName, download, toSeries, type SimRequest, type Variables } from "../api";
import { h, mount, fmtNum, fmtTime, type Child } from "../dom";
import { linePlot, dataTable } from "../plot";
import { errorBox, loading, section, kv } from "../ui";
import { shortHash } from "./catalogue";
import { hasRole, session } from "../state";

/** The model detail as the server sends it; fields beyond the contract are shown when present. */
interface ModelDetail {
  id: string;
  name?: string;
  description?: string;
  authors?: Array<string | { name?: string; given?: string; family?: string }>;
  tags?: string[];
  licence?: string;
  license?: string;
  visibility?: string;
  latest_version?: string;
  annotations?: Array<string | { qualifier?: string; uri?: string; resource?: string }>;
  versions?: Array<Record<string, unknown> | string>;
  evidence?: Array<Record<string, unknown>>;
  credibility?: Array<Record<string, unknown>> | Record<string, unknown>;
}

export function modelPage(main: HTMLElement, params: Record<string, string>): void {
  const id = params.id;
  mount(main, loading("Loading the model"));
  api<ModelDetail>(`/api/models/${encodeURIComponent(id)}`)
    .then((m) => render(main, m))
    .catch((e) => mount(main, h("h1", null, id), errorBox(e)));
}

function versionId(v: Record<string, unknown> | string): string {
  if (typeof v === "string") return v;
  return String(v.version ?? v.hash ?? v.id ?? "");
}

function render(main: HTMLElement, m: ModelDetail): void {
  const versions = (m.versions ?? []).map((v) => (typeof v === "string" ? { version: v } : v));
  const latest = m.latest_version ?? (versions.length ? versionId(versions[versions.length - 1]) : "latest");
  let version = latest;

  const versionSel = h(
    "select",
    {
      id: "version",
      onchange: () => {
        version = versionSel.value;
        loadVariables();
      },
    },
    versions.length === 0 && h("option", { value: "latest" }, "latest"),
    versions.map((v) => {
      const vid = versionId(v);
      return h("option", { value: vid, selected: vid === latest }, `${shortHash(vid)}${vid === latest ? " (latest)" : ""}`);
    }),
  );

  const licence = m.licence ?? m.license;
  const header = h(
    "header",
    { class: "page-head" },
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Catalogue"), " / ", m.id),
    h("h1", null, m.name || m.id),
    m.description && description(m.description),
    kv([
      ["Identifier", h("span", { class: "mono" }, m.id)],
      ["Authors", m.authors && m.authors.length ? m.authors.map(authorName).join(", ") : null],
      ["Licence", licence ?? null],
      ["Visibility", m.visibility ?? null],
      ["Tags", m.tags && m.tags.length ? h("span", { class: "tags" }, m.tags.map((t) => h("span", { class: "tag" }, t))) : null],
    ]),
    h(
      "p",
      { class: "actions" },
      h("label", { for: "version" }, "Version "),
      versionSel,
      h("button", { type: "button", onclick: () => dl("sbml", "xml") }, "Download SBML"),
      h("button", { type: "button", onclick: () => dl("omex", "omex") }, "Download OMEX"),
      session.me && h("a", { href: `#/runs/new?kind=simulate&model=${encodeURIComponent(m.id)}` }, "Submit as a run"),
      hasRole("modeller") && h("a", { href: `#/import?model=${encodeURIComponent(m.id)}` }, "Import a new version"),
    ),
  );
  const dlError = h("div", { "aria-live": "polite" });
  async function dl(kind: string, ext: string) {
    try {
      await download(`/api/models/${encodeURIComponent(m.id)}/versions/${encodeURIComponent(version)}/${kind}`, `${m.id}-${shortHash(version)}.${ext}`);
      mount(dlError);
    } catch (e) {
      mount(dlError, errorBox(e));
    }
  }

  const simBox = h("div", { id: "sim" }, loading("Loading species and parameters"));
  const varsBox = h("div", null);
  mount(
    main,
    header,
    dlError,
    section("Interactive simulation", simBox),
    section("Species, parameters and compartments", varsBox),
    section("Versions", versionsTable(versions, latest)),
    section("Credibility evidence", evidenceList(m)),
    m.annotations && m.annotations.length > 0 && section("Annotations", annotationsList(m.annotations)),
  );

  function loadVariables() {
    mount(simBox, loading("Loading species and parameters"));
    api<Variables>(`/api/models/${encodeURIComponent(m.id)}/versions/${encodeURIComponent(version)}/variables`)
      .then((vars) => {
        mount(varsBox, variablesTables(vars));
        mount(simBox, simulator(m.id, m.name || m.id, version, vars));
      })
      .catch((e) => {
        mount(simBox, errorBox(e));
        mount(varsBox);
      });
  }
  loadVariables();
}

/** Long descriptions (BioModels notes run to pages) show their start, the rest on demand. */
function description(text: string): HTMLElement {
  const t = text.trim();
  if (t.length <= 420) return h("p", { class: "lead" }, t);
  const cut = t.lastIndexOf(" ", 400);
  return h(
    "div",
    { class: "lead" },
    h("p", null, t.slice(0, cut > 200 ? cut : 400) + " …"),
    h("details", null, h("summary", null, "Full description"), h("p", { class: "lead" }, t)),
  );
}

function versionsTable(versions: Array<Record<string, unknown>>, latest: string): HTMLElement {
  if (versions.length === 0) return h("p", { class: "muted" }, "No version history.");
  const order = ["number", "version", "hash", "kind", "created", "created_by"];
  const rank = (k: string) => (order.includes(k) ? order.indexOf(k) : order.length);
  const cols = Array.from(new Set(versions.flatMap((v) => Object.keys(v))))
    .filter((k) => typeof versions[0][k] !== "object" || versions[0][k] === null)
    .sort((a, b) => rank(a) - rank(b));
  return h(
    "table",
    { class: "grid" },
    h("thead", null, h("tr", null, cols.map((c) => h("th", { scope: "col" }, c)))),
    h(
      "tbody",
      null,
      versions.map((v) =>
        h(
          "tr",
          { class: versionId(v) === latest ? "current" : "" },
          cols.map((c) => h("td", { class: c === "version" || c === "hash" ? "mono" : "" }, cell(c, v[c]))),
        ),
      ),
    ),
  );
}

function cell(key: string, v: unknown): Child {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number") return fmtNum(v);
  if (typeof v === "string" && /(^|_)(at|time|created|started|finished)$/.test(key)) return fmtTime(v);
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function evidenceList(m: ModelDetail): HTMLElement {
  const ev = m.evidence ?? (Array.isArray(m.credibility) ? m.credibility : m.credibility ? [m.credibility] : []);
  if (ev.length === 0) return h("p", { class: "muted" }, "No credibility evidence recorded for this model yet.");
  return h(
    "ul",
    { class: "evidence" },
    ev.map((e) => {
      const passed = e.passed ?? e.ok ?? e.status;
      return h(
        "li",
        null,
        passed !== undefined &&
          (() => {
            const good = passed === true || passed === "passed" || passed === "succeeded";
            return h("span", { class: `badge ${good ? "st-succeeded" : "st-failed"}` }, typeof passed === "boolean" ? (good ? "passed" : "failed") : String(passed));
          })(),
        " ",
        h("strong", null, String(e.kind ?? e.name ?? e.type ?? "evidence")),
        " ",
        Object.entries(e)
          .filter(([k]) => !["passed", "ok", "status", "kind", "name", "type"].includes(k))
          .filter(([, v]) => v !== null && v !== undefined)
          .map(([k, v]) =>
            h("span", { class: "muted" }, ` ${k}: `, k === "run" && typeof v === "string"
                ? h("a", { href: `#/runs/${encodeURIComponent(v)}` }, v.slice(0, 12))
                : k === "version" && typeof v === "string"
                  ? h("span", { class: "mono", title: v }, v.slice(0, 12))
                  : cell(k, v)),
          ),
      );
    }),
  );
}

function annotationsList(a: NonNullable<ModelDetail["annotations"]>): HTMLElement {
  return h(
    "ul",
    { class: "annotations" },
    a.map((x) => {
      if (typeof x === "string") return h("li", { class: "mono" }, x);
      const uri = x.uri ?? x.resource ?? "";
      // Links open only when clicked: nothing is fetched from outside on page load.
      const link = /^https?:\/\//.test(uri) ? h("a", { href: uri, rel: "noopener noreferrer", target: "_blank", class: "mono" }, uri) : h("span", { class: "mono" }, uri);
      return h("li", null, x.qualifier ? `${x.qualifier}: ` : "", link);
    }),
  );
}

function variablesTables(v: Variables): HTMLElement {
  const t = (title: string, rows: Array<{ id: string; name?: string; value?: number | null }>, valueLabel: string) =>
    h(
      "div",
      { class: "vars" },
      h("h3", null, `${title} (${rows.length})`),
      rows.length === 0
        ? h("p", { class: "muted" }, "None.")
        : h(
            "table",
            { class: "grid" },
            h("thead", null, h("tr", null, h("th", { scope: "col" }, "id"), h("th", { scope: "col" }, "name"), h("th", { scope: "col" }, valueLabel))),
            h("tbody", null, rows.map((r) => h("tr", null, h("td", { class: "mono" }, r.id), h("td", null, r.name ?? ""), h("td", { class: "num" }, fmtNum(r.value ?? null))))),
          ),
    );
  return h(
    "div",
    { class: "vars-grid" },
    t("Species", v.species.map((s) => ({ id: s.id, name: s.name, value: s.initial })), "initial"),
    t("Parameters", v.parameters, "value"),
    t("Compartments", (v.compartments ?? []).map((c) => ({ id: c.id, name: c.name, value: c.size ?? (c as { value?: number }).value })), "size"),
  );
}

/** The interactive simulation: a form of settings and values, Run, and the plot. */
function simulator(model: string, title: string, version: string, vars: Variables): HTMLElement {
  const num = (id: string, label: string, value: number, attrs: Record<string, unknown> = {}) => {
    const input = h("input", { id, name: id, type: "number", step: "any", value: String(value), required: true, ...attrs });
    return { input, el: h("div", { class: "field" }, h("label", { for: id }, label), input) };
  };
  const start = num("sim-start", "Start time", 0);
  const end = num("sim-end", "End time", 100);
  const points = num("sim-points", "Points", 201, { min: 2, max: 10000, step: 1 });

  const defaults = new Map<string, number>();
  const inputs = new Map<string, HTMLInputElement>();
  const valueRow = (id: string, name: string | undefined, value: number | null | undefined, kind: string) => {
    const fid = `set-${kind}-${id}`;
    const input = h("input", { id: fid, type: "number", step: "any", value: value === null || value === undefined ? "" : String(value), "data-id": id, class: "val" });
    if (value !== null && value !== undefined) defaults.set(id, value);
    inputs.set(id, input);
    return h("tr", null, h("td", null, h("label", { for: fid, class: "mono" }, id)), h("td", null, name ?? ""), h("td", null, input));
  };

  const maxSelected = 8;
  const selectBoxes = vars.species.map((s, i) =>
    h("input", { type: "checkbox", id: `sel-${s.id}`, value: s.id, checked: i < maxSelected }),
  );
  const selectList = h(
    "fieldset",
    { class: "select" },
    h("legend", null, "Plot these species"),
    vars.species.map((s, i) => h("label", { for: `sel-${s.id}` }, selectBoxes[i], " ", s.id)),
  );

  const runBtn = h("button", { type: "submit", id: "run-sim", class: "primary" }, "Run simulation");
  const resetBtn = h(
    "button",
    {
      type: "button",
      onclick: () => {
        for (const [id, input] of inputs) input.value = defaults.has(id) ? String(defaults.get(id)) : "";
      },
    },
    "Reset values",
  );
  const out = h("div", { id: "sim-result", "aria-live": "polite" }, h("p", { class: "muted hint" }, "Change values on the right if you like, then press Run simulation: the time course is plotted here."));
  const status = h("p", { id: "sim-status", class: "muted", role: "status" });

  async function run(ev: Event) {
    ev.preventDefault();
    const set: Record<string, number> = {};
    for (const [id, input] of inputs) {
      if (input.value.trim() === "") continue;
      const v = Number(input.value);
      if (!Number.isFinite(v)) {
        mount(out, errorBox(`The value of ${id} is not a number`));
        return;
      }
      // Only values the user changed are sent: the model's own initial assignments stay in force otherwise.
      if (defaults.get(id) !== v) set[id] = v;
    }
    const select = selectBoxes.filter((b) => b.checked).map((b) => b.value);
    const req: SimRequest = {
      model,
      version,
      start: Number(start.input.value),
      end: Number(end.input.value),
      points: Math.round(Number(points.input.value)),
      set,
    };
    // No species ticked: let the server choose its default columns.
    if (select.length > 0) req.select = select;
    if (!(req.end > req.start)) {
      mount(out, errorBox("The end time must be after the start time"));
      return;
    }
    runBtn.disabled = true;
    status.textContent = "Simulating…";
    const t0 = performance.now();
    try {
      const res = toSeries(await api<unknown>("/api/simulate", { body: req }));
      const ms = performance.now() - t0;
      const changed = Object.keys(set);
      status.textContent = `${res.time.length} points, ${Object.keys(res.series).length} series in ${ms.toFixed(0)} ms${changed.length ? `; changed: ${changed.map((k) => `${k} = ${set[k]}`).join(", ")}` : ""}.`;
      const plot = linePlot({ x: res.time, series: res.series, title: `${title}: time course`, xLabel: "time", width: Math.max(400, (out.clientWidth || 800) - 16) });
      mount(out, plot, h("details", null, h("summary", null, "Data table"), dataTable(res.time, res.series)));
    } catch (e) {
      status.textContent = "";
      mount(out, errorBox(e));
    } finally {
      runBtn.disabled = false;
    }
  }

  return h(
    "form",
    { class: "sim", onsubmit: run, "aria-label": "Simulation settings" },
    h(
      "div",
      { class: "sim-body" },
      h(
        "div",
        { class: "sim-main" },
        h("div", { class: "row" }, start.el, end.el, points.el, h("div", { class: "field buttons" }, runBtn, resetBtn)),
        status,
        out,
      ),
      h(
        "div",
        { class: "sim-inputs" },
        h(
          "details",
          { open: true },
          h("summary", null, `Parameters (${vars.parameters.length})`),
          h("table", { class: "grid compact" }, h("tbody", null, vars.parameters.map((p) => valueRow(p.id, p.name, p.value, "p")))),
        ),
        h(
          "details",
          null,
          h("summary", null, `Initial values of species (${vars.species.length})`),
          h("table", { class: "grid compact" }, h("tbody", null, vars.species.map((s) => valueRow(s.id, s.name, s.initial, "s")))),
        ),
        selectList,
      ),
    ),
  );
}
