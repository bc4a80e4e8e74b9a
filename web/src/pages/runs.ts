import { api, fetchBlob, download } from "../api";
import { h, mount, remount, fmtBytes, fmtTime } from "../dom";
import { items } from "../list";
import { renderMarkdown } from "../markdown";
import { errorBox, kv, loading, section, statusBadge } from "../ui";

export interface Artifact {
  name: string;
  media_type?: string;
  size?: number;
}

export interface Run {
  id: string;
  kind: string;
  status: string;
  progress?: number | null;
  model?: string;
  version?: string;
  created?: string;
  started?: string | null;
  finished?: string | null;
  error?: string | null;
  cancel_requested?: boolean;
  artifacts?: Artifact[];
  params?: Record<string, unknown>;
  dataset?: string | null;
  project?: string | null;
}

const POLL_MS = 1500;

/** Cancelling a running job is a request: the worker stops it at its next check. */
function cancelling(r: Run): boolean {
  return !!r.cancel_requested && ACTIVE.has(r.status);
}
const ACTIVE = new Set(["queued", "running"]);

function progressBar(r: Run): HTMLElement {
  const p = typeof r.progress === "number" ? Math.max(0, Math.min(1, r.progress)) : r.status === "succeeded" ? 1 : 0;
  return h(
    "span",
    { class: "prog" },
    h("progress", { class: "progress", max: "1", value: String(p), "aria-label": `progress of run ${r.id}` }),
    ` ${Math.round(p * 100)}%`,
  );
}

async function cancel(id: string, after: () => void, msg: HTMLElement): Promise<void> {
  try {
    await api(`/api/runs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
    after();
  } catch (e) {
    mount(msg, errorBox(e));
  }
}

/** Runs list with live status: polled every 1.5 s while the page is open. */
export function runsPage(main: HTMLElement, _p: Record<string, string>, query: URLSearchParams): () => void {
  const status = query.get("status") ?? "";
  const filter = h(
    "select",
    { id: "status-filter", onchange: () => (location.hash = filter.value ? `#/runs?status=${filter.value}` : "#/runs") },
    ["", "queued", "running", "succeeded", "failed", "cancelled"].map((s) => h("option", { value: s, selected: s === status }, s || "any")),
  );
  const msg = h("div", { "aria-live": "polite" });
  const table = h("div", null, loading("Loading runs"));
  const updated = h("span", { class: "muted", role: "status" });
  mount(
    main,
    h("h1", null, "Runs"),
    h("div", { class: "toolbar" }, h("label", { for: "status-filter" }, "Status"), filter, h("a", { href: "#/runs/new" }, "Submit a run"), updated),
    msg,
    table,
  );

  let stopped = false;
  let timer: number | undefined;
  let lastList = "";
  async function poll() {
    const qs = new URLSearchParams({ limit: "100" });
    if (status) qs.set("status", status);
    try {
      const runs = items<Run>(await api<unknown>(`/api/runs?${qs}`));
      if (stopped) return;
      // Re-render only on change, keeping the keyboard focus where it was.
      const key = JSON.stringify(runs);
      if (key !== lastList) {
        lastList = key;
        remount(table, runsTable(runs, msg, poll));
      }
      updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (stopped) return;
      mount(table, errorBox(e));
    }
    if (!stopped) timer = window.setTimeout(poll, POLL_MS);
  }
  poll();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}

function runsTable(runs: Run[], msg: HTMLElement, refresh: () => void): HTMLElement {
  if (runs.length === 0) return h("p", { class: "muted" }, "No runs.");
  return h(
    "table",
    { class: "grid runs" },
    h(
      "thead",
      null,
      h("tr", null, ["run", "kind", "model", "status", "progress", "created", "finished", ""].map((c) => h("th", { scope: "col" }, c))),
    ),
    h(
      "tbody",
      null,
      runs.map((r) =>
        h(
          "tr",
          { "data-run": r.id },
          h("td", { class: "mono" }, h("a", { href: `#/runs/${encodeURIComponent(r.id)}`, "data-key": `open-${r.id}` }, r.id.slice(0, 12))),
          h("td", null, r.kind),
          h("td", null, r.model ? h("a", { href: `#/models/${encodeURIComponent(r.model)}`, "data-key": `model-${r.id}` }, r.model) : "—"),
          h("td", null, statusBadge(r.status), cancelling(r) && h("span", { class: "muted" }, " cancelling…")),
          h("td", null, progressBar(r)),
          h("td", null, fmtTime(r.created)),
          h("td", null, fmtTime(r.finished)),
          h(
            "td",
            null,
            ACTIVE.has(r.status) &&
              !cancelling(r) &&
              h("button", { type: "button", class: "danger", onclick: () => cancel(r.id, refresh, msg), "aria-label": `Cancel run ${r.id}`, "data-key": `cancel-${r.id}` }, "Cancel"),
          ),
        ),
      ),
    ),
  );
}

/** One run: status (polled while active), logs, artifacts (SVG inline, report.md rendered). */
export function runPage(main: HTMLElement, params: Record<string, string>): () => void {
  const id = params.id;
  const head = h("div", null, loading("Loading the run"));
  const msg = h("div", { "aria-live": "polite" });
  const logs = h("pre", { class: "logs", tabindex: "0", "aria-label": "Run log" });
  const artifacts = h("div", null);
  mount(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/runs" }, "Runs"), " / ", id),
    h("h1", null, `Run ${id.slice(0, 12)}`),
    head,
    msg,
    section("Log", logs),
    section("Artifacts", artifacts),
  );
  let stopped = false;
  let timer: number | undefined;
  let shownArtifacts = "";
  async function poll() {
    try {
      const r = await api<Run>(`/api/runs/${encodeURIComponent(id)}`);
      if (stopped) return;
      remount(
        head,
        kv([
          ["Kind", r.kind],
          ["Status", h("span", { id: "run-status" }, statusBadge(r.status), cancelling(r) && h("span", { class: "muted" }, " cancel requested: the job stops at its next check"))],
          ["Progress", progressBar(r)],
          ["Model", r.model ? h("a", { href: `#/models/${encodeURIComponent(r.model)}` }, r.model) : null],
          ["Version", r.version ? h("span", { class: "mono" }, r.version) : null],
          ["Dataset", r.dataset ?? null],
          ["Created", fmtTime(r.created)],
          ["Started", fmtTime(r.started)],
          ["Finished", fmtTime(r.finished)],
          ["Error", r.error ? h("span", { class: "error" }, r.error) : null],
        ]),
        h(
          "p",
          { class: "actions" },
          ACTIVE.has(r.status) && !cancelling(r) && h("button", { type: "button", class: "danger", onclick: () => cancel(r.id, poll, msg), "data-key": "cancel" }, "Cancel run"),
          r.kind === "trial" && r.status === "succeeded" && h("a", { href: `#/trials/${encodeURIComponent(r.id)}` }, "Trial report"),
        ),
      );
      try {
        const text = await api<string>(`/api/runs/${encodeURIComponent(id)}/logs`, { text: true });
        const next = text || "(empty)";
        if (!stopped && logs.textContent !== next) {
          // Follow the log while the reader is at its end; leave them where they are otherwise.
          const atEnd = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
          logs.textContent = next;
          if (atEnd) logs.scrollTop = logs.scrollHeight;
        }
      } catch (e) {
        logs.textContent = `(log unavailable: ${String(e)})`;
      }
      const key = (r.artifacts ?? []).map((a) => `${a.name}:${a.size}`).join(",");
      if (key !== shownArtifacts) {
        shownArtifacts = key;
        mount(artifacts, artifactList(id, r.artifacts ?? []));
      }
      if (!stopped && ACTIVE.has(r.status)) timer = window.setTimeout(poll, POLL_MS);
    } catch (e) {
      if (!stopped) mount(head, errorBox(e));
    }
  }
  poll();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}

export function artifactUrl(run: string, name: string): string {
  // One path segment: a name with a slash is sent as %2F.
  return `/api/runs/${encodeURIComponent(run)}/artifacts/${encodeURIComponent(name)}`;
}

function isSvg(a: Artifact) {
  return a.name.endsWith(".svg") || a.media_type === "image/svg+xml";
}

export function artifactList(run: string, arts: Artifact[]): HTMLElement {
  if (arts.length === 0) return h("p", { class: "muted" }, "No artifacts yet.");
  const inline = h("div", null);
  const list = h(
    "table",
    { class: "grid" },
    h("thead", null, h("tr", null, ["name", "type", "size", ""].map((c) => h("th", { scope: "col" }, c)))),
    h(
      "tbody",
      null,
      arts.map((a) =>
        h(
          "tr",
          null,
          h("td", { class: "mono" }, a.name),
          h("td", null, a.media_type ?? ""),
          h("td", { class: "num" }, a.size !== undefined ? fmtBytes(a.size) : ""),
          h("td", null, h("button", { type: "button", onclick: () => download(artifactUrl(run, a.name), a.name.split("/").pop() ?? a.name) }, "Download")),
        ),
      ),
    ),
  );
  const report = arts.find((a) => a.name === "report.md" || a.name.endsWith("/report.md"));
  if (report) inline.appendChild(h("details", { class: "report-box" }, h("summary", null, `${report.name} (rendered)`), markdownArtifact(run, report.name)));
  for (const a of arts.filter(isSvg)) inline.appendChild(svgArtifact(run, a.name));
  return h("div", null, list, inline);
}

/** An SVG artifact shown through <img> from a blob URL: scripts inside it cannot run. */
export function svgArtifact(run: string, name: string): HTMLElement {
  const fig = h("figure", { class: "artifact-svg" }, h("figcaption", null, name));
  fetchBlob(artifactUrl(run, name))
    .then((b) => {
      const url = URL.createObjectURL(new Blob([b], { type: "image/svg+xml" }));
      fig.appendChild(h("img", { src: url, alt: `plot ${name}` }));
    })
    .catch((e) => fig.appendChild(errorBox(e)));
  return fig;
}

export function markdownArtifact(run: string, name: string): HTMLElement {
  const box = h("div", { class: "report" }, loading(`Loading ${name}`));
  fetchBlob(artifactUrl(run, name))
    .then((b) => b.text())
    .then((t) =>
      mount(
        box,
        renderMarkdown(
          t,
          async (n) => URL.createObjectURL(await fetchBlob(artifactUrl(run, n))),
          (n) => void download(artifactUrl(run, n), n.split("/").pop() ?? n),
        ),
      ),
    )
    .catch((e) => mount(box, errorBox(e)));
  return box;
}

/** Submit a run: kind, model, version, params as JSON, optional dataset/project. */
export function newRunPage(main: HTMLElement, _p: Record<string, string>, query: URLSearchParams): void {
  const kind = h("select", { id: "run-kind" }, ["simulate", "fit", "trial", "twin"].map((k) => h("option", { value: k, selected: k === query.get("kind") }, k)));
  const model = h("input", { id: "run-model", required: true, value: query.get("model") ?? "" });
  const version = h("input", { id: "run-version", value: query.get("version") ?? "latest" });
  const dataset = h("input", { id: "run-dataset" });
  const project = h("input", { id: "run-project" });
  const params = h("textarea", { id: "run-params", rows: "8", cols: "60", class: "mono" });
  params.value = '{\n  "end": 100,\n  "points": 101\n}';
  const msg = h("div", { "aria-live": "polite" });
  const field = (id: string, label: string, el: HTMLElement) => h("div", { class: "field" }, h("label", { for: id }, label), el);
  mount(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/runs" }, "Runs"), " / new"),
    h("h1", null, "Submit a run"),
    h(
      "form",
      {
        class: "sim",
        onsubmit: async (ev: Event) => {
          ev.preventDefault();
          let p: unknown;
          try {
            p = JSON.parse(params.value || "{}");
          } catch (e) {
            mount(msg, errorBox(`params is not valid JSON: ${String(e)}`));
            return;
          }
          const body: Record<string, unknown> = { kind: kind.value, model: model.value.trim(), version: version.value.trim() || "latest", params: p };
          if (dataset.value.trim()) body.dataset = dataset.value.trim();
          if (project.value.trim()) body.project = project.value.trim();
          try {
            const r = await api<{ id: string }>("/api/runs", { body });
            location.hash = `#/runs/${encodeURIComponent(r.id)}`;
          } catch (e) {
            mount(msg, errorBox(e));
          }
        },
      },
      h("div", { class: "row" }, field("run-kind", "Kind", kind), field("run-model", "Model id", model), field("run-version", "Version", version)),
      h("div", { class: "row" }, field("run-dataset", "Dataset (optional)", dataset), field("run-project", "Project (optional)", project)),
      field("run-params", "Parameters (JSON)", params),
      h("p", null, h("button", { type: "submit", class: "primary" }, "Submit")),
      msg,
    ),
  );
}
