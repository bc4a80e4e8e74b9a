import { api, ApiError } from "../api";
import { h, mount, fmtNum, fmtTime } from "../dom";
import { items } from "../list";
import { errorBox, kv, loading, section } from "../ui";

interface Dataset {
  id: string;
  name: string;
  project?: string | null;
  classification: string;
  owner?: string;
  columns?: string[];
  rows?: number;
  created?: string;
}

interface Group {
  group: string;
  n?: number;
  mean?: number;
  sd?: number;
  min?: number;
  max?: number;
  suppressed: boolean;
}

function classBadge(c: string): HTMLElement {
  return h("span", { class: `badge ${c === "public" ? "st-succeeded" : c === "restricted" ? "st-queued" : "st-failed"}` }, c);
}

export function datasetsPage(main: HTMLElement): void {
  const box = h("div", null, loading("Loading datasets"));
  mount(main, h("h1", null, "Datasets"), h("p", null, "Restricted and sensitive data never leave as rows: they are read as aggregates under a data permit, and every read is audited."), box);
  api<unknown>("/api/datasets")
    .then((r) => {
      const ds = items<Dataset>(r);
      if (ds.length === 0) return mount(box, h("p", { class: "muted" }, "No datasets."));
      mount(
        box,
        h(
          "table",
          { class: "grid" },
          h("thead", null, h("tr", null, ["dataset", "classification", "project", "rows", "columns", "created"].map((c) => h("th", { scope: "col" }, c)))),
          h(
            "tbody",
            null,
            ds.map((d) =>
              h(
                "tr",
                null,
                h("td", null, h("a", { href: `#/datasets/${encodeURIComponent(d.id)}` }, d.name || d.id)),
                h("td", null, classBadge(d.classification)),
                h("td", { class: "mono" }, d.project ?? "—"),
                h("td", { class: "num" }, d.rows !== undefined ? String(d.rows) : "—"),
                h("td", null, (d.columns ?? []).join(", ")),
                h("td", null, fmtTime(d.created)),
              ),
            ),
          ),
        ),
      );
    })
    .catch((e) => mount(box, errorBox(e)));
}

export function datasetPage(main: HTMLElement, params: Record<string, string>): void {
  const id = params.id;
  mount(main, loading("Loading the dataset"));
  api<Dataset>(`/api/datasets/${encodeURIComponent(id)}`)
    .then((d) => {
      const cols = d.columns ?? [];
      const groupBy = h("select", { id: "agg-group" }, h("option", { value: "" }, "(no grouping)"), cols.map((c) => h("option", { value: c }, c)));
      // The last column is the likeliest measure (identifiers and groups usually come first).
      const measure = h("select", { id: "agg-measure", required: true }, cols.map((c, i) => h("option", { value: c, selected: i === cols.length - 1 }, c)));
      const project = h("input", { id: "agg-project", value: d.project ?? "" });
      const aggOut = h("div", { "aria-live": "polite" });
      const rowsOut = h("div", { "aria-live": "polite" });
      const field = (fid: string, label: string, el: HTMLElement) => h("div", { class: "field" }, h("label", { for: fid }, label), el);
      mount(
        main,
        h("p", { class: "crumbs" }, h("a", { href: "#/datasets" }, "Datasets"), " / ", id),
        h("h1", null, `Dataset ${d.name || d.id}`),
        kv([
          ["Identifier", h("span", { class: "mono" }, d.id)],
          ["Classification", classBadge(d.classification)],
          ["Project", d.project ?? null],
          ["Owner", d.owner ?? null],
          ["Rows", d.rows !== undefined ? String(d.rows) : null],
          ["Columns", cols.join(", ")],
          ["Created", fmtTime(d.created)],
        ]),
        section(
          "Aggregate",
          h(
            "p",
            null,
            `Groups of fewer than 5 records are suppressed.${d.classification !== "public" ? " Needs a valid data permit for the project; the read is written to the audit log." : ""}`,
          ),
          h(
            "form",
            {
              class: "sim",
              onsubmit: async (ev: Event) => {
                ev.preventDefault();
                const qs = new URLSearchParams({ measure: measure.value });
                if (groupBy.value) qs.set("group_by", groupBy.value);
                if (project.value.trim()) qs.set("project", project.value.trim());
                mount(aggOut, loading("Aggregating"));
                try {
                  const r = await api<{ groups: Group[]; permit?: string | null; min_group?: number }>(`/api/datasets/${encodeURIComponent(id)}/aggregate?${qs}`);
                  mount(aggOut, aggregateTable(r.groups), r.permit && h("p", { class: "muted" }, "Read under permit ", h("span", { class: "mono" }, r.permit), "."));
                } catch (e) {
                  mount(aggOut, errorBox(e));
                }
              },
            },
            h("div", { class: "row" }, field("agg-measure", "Measure", measure), field("agg-group", "Group by", groupBy), field("agg-project", "Project", project), h("div", { class: "field buttons" }, h("button", { type: "submit", class: "primary" }, "Aggregate"))),
            aggOut,
          ),
        ),
        section(
          "Rows",
          d.classification === "public"
            ? h(
                "button",
                {
                  type: "button",
                  onclick: async () => {
                    try {
                      const r = await api<{ columns: string[]; rows: unknown[][] }>(`/api/datasets/${encodeURIComponent(id)}/rows`);
                      mount(rowsOut, rowsTable(r.columns, r.rows));
                    } catch (e) {
                      mount(rowsOut, errorBox(e));
                    }
                  },
                },
                "Show rows",
              )
            : h("p", { class: "muted" }, `This dataset is ${d.classification}: its rows never leave the platform, only aggregates.`),
          rowsOut,
        ),
      );
    })
    .catch((e) => mount(main, h("h1", null, `Dataset ${id}`), errorBox(e instanceof ApiError && e.status === 403 ? new ApiError(403, e.code, `${e.message}`) : e)));
}

function aggregateTable(groups: Group[]): HTMLElement {
  return h(
    "table",
    { class: "grid" },
    h("thead", null, h("tr", null, ["group", "n", "mean", "sd", "min", "max"].map((c) => h("th", { scope: "col" }, c)))),
    h(
      "tbody",
      null,
      groups.map((g) =>
        g.suppressed
          ? h("tr", null, h("td", null, g.group), h("td", { colspan: "5", class: "muted" }, "suppressed (small group)"))
          : h("tr", null, h("td", null, g.group), h("td", { class: "num" }, String(g.n)), [g.mean, g.sd, g.min, g.max].map((x) => h("td", { class: "num" }, fmtNum(x)))),
      ),
    ),
  );
}

function rowsTable(cols: string[], rows: unknown[][]): HTMLElement {
  const shown = rows.slice(0, 500);
  return h(
    "div",
    null,
    h(
      "table",
      { class: "grid" },
      h("thead", null, h("tr", null, cols.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", null, shown.map((r) => h("tr", null, r.map((v) => h("td", null, typeof v === "number" ? fmtNum(v) : v === null ? "—" : String(v)))))),
    ),
    rows.length > shown.length && h("p", { class: "muted" }, `First ${shown.length} of ${rows.length} rows.`),
  );
}
