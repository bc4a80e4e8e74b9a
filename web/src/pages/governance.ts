import { api } from "../api";
import { h, mount, fmtTime } from "../dom";
import { items } from "../list";
import { errorBox, loading, section, statusBadge } from "../ui";
import { session } from "../state";

interface Permit {
  id: string;
  project: string;
  dataset: string;
  purpose?: string;
  valid_from?: string;
  valid_until?: string;
  revoked?: boolean | string | null;
  valid?: boolean;
  granted_by?: string;
}

interface AuditEntry {
  seq: number;
  time: string;
  actor: string;
  action: string;
  object: string;
  permit?: string | null;
  prev_hash?: string;
  hash?: string;
}

/** Data steward pages: permits (grant, revoke) and the hash-chained audit log with its check. */
export function governancePage(main: HTMLElement): void {
  const permits = h("div", null, loading("Loading permits"));
  const audit = h("div", null, loading("Loading the audit log"));
  const verify = h("div", { id: "audit-verify", role: "status" }, loading("Verifying the audit chain"));
  const msg = h("div", { "aria-live": "polite" });

  const today = new Date().toISOString().slice(0, 10);
  const inYear = new Date(Date.now() + 365 * 864e5).toISOString().slice(0, 10);
  const f = {
    project: h("input", { id: "p-project", required: true, list: "dl-projects" }),
    dataset: h("input", { id: "p-dataset", required: true, list: "dl-datasets" }),
    purpose: h("input", { id: "p-purpose", required: true, size: 40 }),
    from: h("input", { id: "p-from", type: "date", required: true, value: today }),
    until: h("input", { id: "p-until", type: "date", required: true, value: inYear }),
  };
  const field = (id: string, label: string, el: HTMLElement) => h("div", { class: "field" }, h("label", { for: id }, label), el);
  const form = h(
    "form",
    {
      class: "sim",
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        try {
          await api("/api/permits", {
            body: {
              project: f.project.value.trim(),
              dataset: f.dataset.value.trim(),
              purpose: f.purpose.value.trim(),
              valid_from: new Date(f.from.value + "T00:00:00Z").toISOString(),
              valid_until: new Date(f.until.value + "T23:59:59Z").toISOString(),
            },
          });
          mount(msg, h("p", { class: "ok" }, "Permit granted."));
          loadPermits();
          loadAudit();
        } catch (e) {
          mount(msg, errorBox(e));
        }
      },
    },
    h(
      "div",
      { class: "row" },
      field("p-project", "Project", f.project),
      field("p-dataset", "Dataset", f.dataset),
      field("p-purpose", "Purpose", f.purpose),
      field("p-from", "Valid from", f.from),
      field("p-until", "Valid until", f.until),
      h("div", { class: "field buttons" }, h("button", { type: "submit", class: "primary" }, "Grant permit")),
    ),
    msg,
  );

  // Suggestions for the permit form: the projects and datasets the steward can see.
  const dlProjects = h("datalist", { id: "dl-projects" });
  const dlDatasets = h("datalist", { id: "dl-datasets" });
  api<unknown>("/api/projects")
    .then((r) => mount(dlProjects, items<{ id: string; name: string }>(r).map((p) => h("option", { value: p.id }, p.name))))
    .catch(() => undefined);
  api<unknown>("/api/datasets")
    .then((r) => mount(dlDatasets, items<{ id: string; name: string; classification: string }>(r).map((d) => h("option", { value: d.id }, `${d.name} (${d.classification})`))))
    .catch(() => undefined);
  mount(
    main,
    dlProjects,
    dlDatasets,
    h("h1", null, "Governance"),
    section(
      "Data permits",
      permits,
      // Only data stewards grant and revoke permits (an administrator does not).
      session.roles.has("data_steward") ? [h("h3", null, "Grant a permit"), form] : h("p", { class: "muted" }, "Data stewards grant and revoke permits."),
    ),
    section("Audit log", verify, audit),
  );

  function loadPermits() {
    api<unknown>("/api/permits")
      .then((r) => mount(permits, permitsTable(items<Permit>(r))))
      .catch((e) => mount(permits, errorBox(e)));
  }
  function loadAudit() {
    api<{ ok: boolean; first_bad_seq?: number | null; entries?: number }>("/api/audit/verify")
      .then((v) =>
        mount(
          verify,
          v.ok
            ? h("p", null, statusBadge("ok"), ` The hash chain is intact${v.entries !== undefined ? ` (${v.entries} entries)` : ""}: no entry was changed or removed.`)
            : h("p", { class: "error" }, `The hash chain is broken at entry ${v.first_bad_seq ?? "?"}: the log was tampered with from there on.`),
        ),
      )
      .catch((e) => mount(verify, errorBox(e)));
    api<unknown>("/api/audit?limit=200")
      .then((r) => mount(audit, auditTable(items<AuditEntry>(r))))
      .catch((e) => mount(audit, errorBox(e)));
  }

  function permitsTable(ps: Permit[]): HTMLElement {
    if (ps.length === 0) return h("p", { class: "muted" }, "No permits.");
    const now = Date.now();
    return h(
      "table",
      { class: "grid" },
      h("thead", null, h("tr", null, ["permit", "project", "dataset", "purpose", "valid from", "valid until", "state", ""].map((c) => h("th", { scope: "col" }, c)))),
      h(
        "tbody",
        null,
        ps.map((p) => {
          const revoked = !!p.revoked;
          const expired = p.valid_until ? Date.parse(p.valid_until) < now : false;
          const notYet = p.valid_from ? Date.parse(p.valid_from) > now : false;
          // The server's `valid` is authoritative (its clock); the dates explain why not.
          const state = revoked ? "revoked" : p.valid === true || (p.valid === undefined && !expired && !notYet) ? "valid" : expired ? "expired" : notYet ? "not yet valid" : "invalid";
          return h(
            "tr",
            null,
            h("td", { class: "mono" }, p.id.slice(0, 12)),
            h("td", null, p.project),
            h("td", null, p.dataset),
            h("td", null, p.purpose ?? ""),
            h("td", null, fmtTime(p.valid_from)),
            h("td", null, fmtTime(p.valid_until)),
            h("td", null, h("span", { class: `badge ${state === "valid" ? "st-succeeded" : "st-cancelled"}` }, state)),
            h(
              "td",
              null,
              state === "valid" &&
                session.roles.has("data_steward") &&
                h(
                  "button",
                  {
                    type: "button",
                    class: "danger",
                    "aria-label": `Revoke permit ${p.id}`,
                    onclick: async () => {
                      try {
                        await api(`/api/permits/${encodeURIComponent(p.id)}`, { method: "DELETE" });
                        loadPermits();
                        loadAudit();
                      } catch (e) {
                        mount(msg, errorBox(e));
                      }
                    },
                  },
                  "Revoke",
                ),
            ),
          );
        }),
      ),
    );
  }
  loadPermits();
  loadAudit();
}

function auditTable(es: AuditEntry[]): HTMLElement {
  if (es.length === 0) return h("p", { class: "muted" }, "The audit log is empty.");
  return h(
    "table",
    { class: "grid audit" },
    h("thead", null, h("tr", null, ["seq", "time", "actor", "action", "object", "permit", "hash"].map((c) => h("th", { scope: "col" }, c)))),
    h(
      "tbody",
      null,
      es.map((e) =>
        h(
          "tr",
          null,
          h("td", { class: "num" }, String(e.seq)),
          h("td", null, fmtTime(e.time)),
          h("td", null, e.actor),
          h("td", null, e.action),
          h("td", { class: "mono" }, e.object),
          h("td", { class: "mono" }, e.permit ?? "—"),
          h("td", { class: "mono", title: e.hash ?? "" }, (e.hash ?? "").slice(0, 12)),
        ),
      ),
    ),
  );
}
