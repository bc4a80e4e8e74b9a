import { api, authorName, type ModelSummary, type Page } from "../api";
import { h, mount } from "../dom";
import { errorBox, loading } from "../ui";

const PAGE = 20;

export function cataloguePage(main: HTMLElement, _params: Record<string, string>, query: URLSearchParams): void {
  const q = query.get("q") ?? "";
  const offset = Math.max(0, Number(query.get("offset") ?? 0) || 0);
  const input = h("input", { type: "search", id: "q", name: "q", value: q, placeholder: "name, description, author, annotation" });
  const form = h(
    "form",
    {
      class: "search",
      role: "search",
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        const v = input.value.trim();
        location.hash = v ? `#/?q=${encodeURIComponent(v)}` : "#/";
      },
    },
    h("label", { for: "q" }, "Search models"),
    input,
    h("button", { type: "submit" }, "Search"),
  );
  const results = h("div", { id: "results" }, loading("Loading the catalogue"));
  mount(main, h("h1", null, "Model catalogue"), form, results);

  const params = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
  if (q) params.set("q", q);
  api<Page<ModelSummary>>(`/api/models?${params}`)
    .then((page) => {
      if (page.items.length === 0) {
        mount(results, h("p", null, q ? `No model matches “${q}”.` : "The catalogue is empty."));
        return;
      }
      const list = h(
        "ul",
        { class: "cards", "aria-label": "Models" },
        page.items.map((m) =>
          h(
            "li",
            { class: "card", "data-model": m.id },
            h("h2", null, h("a", { href: `#/models/${encodeURIComponent(m.id)}` }, m.name || m.id)),
            m.description && h("p", { class: "desc" }, truncate(m.description, 240)),
            h(
              "p",
              { class: "meta" },
              m.authors && m.authors.length > 0 && h("span", null, m.authors.slice(0, 4).map(authorName).join(", "), m.authors.length > 4 ? " et al." : ""),
              m.latest_version && h("span", { class: "mono", title: "latest version" }, shortHash(m.latest_version)),
              m.visibility && m.visibility !== "public" && h("span", { class: "badge" }, m.visibility),
            ),
            m.tags && m.tags.length > 0 && h("p", { class: "tags" }, m.tags.slice(0, 8).map((t) => h("span", { class: "tag" }, t))),
          ),
        ),
      );
      const nav = h(
        "nav",
        { class: "pager", "aria-label": "Pages" },
        h("span", null, `${offset + 1}–${offset + page.items.length} of ${page.total}`),
        offset > 0 && h("a", { href: pageHref(q, Math.max(0, offset - PAGE)) }, "← Previous"),
        offset + page.items.length < page.total && h("a", { href: pageHref(q, offset + PAGE) }, "Next →"),
      );
      mount(results, list, nav);
    })
    .catch((e) => mount(results, errorBox(e)));
}

function pageHref(q: string, offset: number): string {
  const p = new URLSearchParams();
  if (q) p.set("q", q);
  if (offset) p.set("offset", String(offset));
  const s = p.toString();
  return s ? `#/?${s}` : "#/";
}

export function truncate(s: string, n: number): string {
  const t = s.replace(/\s+/g, " ").trim();
  return t.length > n ? t.slice(0, n - 1) + "…" : t;
}

export function shortHash(v: string): string {
  return v.length > 16 ? v.slice(0, 12) : v;
}
