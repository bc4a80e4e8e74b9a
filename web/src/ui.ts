// Small shared pieces of page layout.
import { ApiError } from "./api";
import { h, type Child } from "./dom";

export function errorBox(e: unknown): HTMLElement {
  let msg = String(e);
  let hint: Child = null;
  if (e instanceof ApiError) {
    msg = `${e.message} (${e.code}${e.status ? `, HTTP ${e.status}` : ""})`;
    if (e.status === 401) hint = h("span", null, " ", h("a", { href: "#/login" }, "Sign in with an API token"), ".");
    if (e.status === 403) hint = " Your role does not allow this.";
  }
  return h("div", { class: "error", role: "alert" }, msg, hint);
}

export function loading(what = "Loading"): HTMLElement {
  return h("p", { class: "muted", "aria-busy": "true" }, `${what}…`);
}

export function statusBadge(status: string): HTMLElement {
  return h("span", { class: `badge st-${status}` }, status);
}

export function kv(pairs: Array<[string, Child]>): HTMLElement {
  return h(
    "dl",
    { class: "kv" },
    pairs.map(([k, v]) => [h("dt", null, k), h("dd", null, v ?? "—")]),
  );
}

export function section(title: string, ...children: Child[]): HTMLElement {
  const id = "s-" + title.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), children);
}
