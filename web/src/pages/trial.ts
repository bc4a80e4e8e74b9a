import { api, fetchBlob } from "../api";
import { h, mount, fmtNum } from "../dom";
import { errorBox, loading, section, kv, statusBadge } from "../ui";
import { artifactUrl, markdownArtifact, svgArtifact, type Run } from "./runs";

// summary.json as vht-trial writes it (crates/trial/src/analysis.rs).
interface Stat {
  name: string;
  n: number;
  mean: number | null;
  sd: number | null;
  quantiles?: Array<[number, number]>;
}
interface Arm {
  name: string;
  patients: number;
  ok: number;
  failed: number;
  endpoints: Stat[];
  responders?: Array<{ definition?: string; name?: string; responders: number; n: number; rate: number | null }>;
}
interface Comparison {
  arm: string;
  control: string;
  endpoints: Array<Stat & { ci_low: number | null; ci_high: number | null; confidence?: number }>;
}
interface Summary {
  trial: string;
  model?: string;
  population?: { size: number; sampler?: string; seed?: number; candidates_tried?: number; candidates_accepted?: number };
  arms: Arm[];
  comparisons?: Comparison[];
}

function median(s: Stat): number | null {
  const q = s.quantiles?.find(([p]) => p === 0.5);
  return q ? q[1] : null;
}

/** A trial run's report: per-arm endpoint table, paired comparisons, plots, report.md. */
export function trialPage(main: HTMLElement, params: Record<string, string>): void {
  const id = params.id;
  mount(main, loading("Loading the trial"));
  api<Run>(`/api/runs/${encodeURIComponent(id)}`)
    .then(async (r) => {
      const names = (r.artifacts ?? []).map((a) => a.name);
      const summaryName = names.find((n) => n === "summary.json" || n.endsWith("/summary.json"));
      let summary: Summary | null = null;
      let summaryError: unknown = null;
      if (summaryName) {
        try {
          summary = JSON.parse(await (await fetchBlob(artifactUrl(id, summaryName))).text()) as Summary;
        } catch (e) {
          summaryError = e;
        }
      }
      const report = names.find((n) => n === "report.md" || n.endsWith("/report.md"));
      const svgs = names.filter((n) => n.endsWith(".svg"));
      mount(
        main,
        h("p", { class: "crumbs" }, h("a", { href: "#/runs" }, "Runs"), " / ", h("a", { href: `#/runs/${encodeURIComponent(id)}` }, id.slice(0, 12)), " / report"),
        h("h1", null, `Trial report${summary ? `: ${summary.trial}` : ""}`),
        kv([
          ["Run", h("a", { href: `#/runs/${encodeURIComponent(id)}` }, id)],
          ["Status", statusBadge(r.status)],
          ["Model", r.model ?? summary?.model ?? null],
          [
            "Population",
            summary?.population
              ? `${summary.population.size} patients (${summary.population.sampler ?? "?"} sampler, seed ${summary.population.seed ?? "?"})`
              : null,
          ],
        ]),
        summaryError ? errorBox(summaryError) : null,
        summary ? section("Endpoints per arm", armTable(summary)) : !summaryName && h("p", { class: "muted" }, "This run has no summary.json (yet)."),
        summary?.comparisons && summary.comparisons.length > 0 && section("Paired comparisons with the control arm", comparisonTable(summary.comparisons)),
        svgs.length > 0 && section("Plots", h("div", { class: "plots" }, svgs.map((n) => svgArtifact(id, n)))),
        report && section("Full report", h("details", null, h("summary", null, "report.md"), markdownArtifact(id, report))),
      );
    })
    .catch((e) => mount(main, h("h1", null, "Trial report"), errorBox(e)));
}

function armTable(s: Summary): HTMLElement {
  const endpoints = Array.from(new Set(s.arms.flatMap((a) => a.endpoints.map((e) => e.name))));
  return h(
    "table",
    { class: "grid trial-arms" },
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        h("th", { scope: "col" }, "arm"),
        h("th", { scope: "col" }, "patients (ok / failed)"),
        endpoints.map((e) => h("th", { scope: "col" }, e, h("br"), h("span", { class: "muted" }, "mean ± sd [median]"))),
      ),
    ),
    h(
      "tbody",
      null,
      s.arms.map((a) =>
        h(
          "tr",
          null,
          h("th", { scope: "row" }, a.name),
          h("td", { class: "num" }, `${a.patients} (${a.ok} / ${a.failed})`),
          endpoints.map((name) => {
            const e = a.endpoints.find((x) => x.name === name);
            if (!e) return h("td", null, "—");
            return h("td", { class: "num" }, `${fmtNum(e.mean)} ± ${fmtNum(e.sd)}`, h("br"), h("span", { class: "muted" }, `[${fmtNum(median(e))}] n=${e.n}`));
          }),
        ),
      ),
    ),
  );
}

function comparisonTable(cs: Comparison[]): HTMLElement {
  return h(
    "table",
    { class: "grid" },
    h("thead", null, h("tr", null, ["arm − control", "endpoint", "n", "mean difference", "confidence interval"].map((c) => h("th", { scope: "col" }, c)))),
    h(
      "tbody",
      null,
      cs.flatMap((c) =>
        c.endpoints.map((e) =>
          h(
            "tr",
            null,
            h("td", null, `${c.arm} − ${c.control}`),
            h("td", null, e.name),
            h("td", { class: "num" }, String(e.n)),
            h("td", { class: "num" }, fmtNum(e.mean)),
            h(
              "td",
              { class: "num" },
              e.ci_low === null || e.ci_high === null ? "—" : `[${fmtNum(e.ci_low)}, ${fmtNum(e.ci_high)}] (${Math.round((e.confidence ?? 0.95) * 100)}%)`,
            ),
          ),
        ),
      ),
    ),
  );
}
