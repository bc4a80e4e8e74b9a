import { api } from "../api";
import { h, mount } from "../dom";
import { errorBox, section } from "../ui";

const ROLES = ["admin", "modeller", "researcher", "clinician", "data_steward"];

/** Modellers import models; administrators create users (the token is shown once). */
export function importPage(main: HTMLElement, _p: Record<string, string>, query: URLSearchParams): void {
  const file = h("input", { id: "imp-file", type: "file", required: true, accept: ".xml,.sbml,.omex,.zip" });
  const kind = h(
    "select",
    { id: "imp-kind" },
    h("option", { value: "auto" }, "from the file name"),
    h("option", { value: "sbml" }, "SBML (.xml)"),
    h("option", { value: "omex" }, "COMBINE/OMEX archive"),
    h("option", { value: "petab" }, "PEtab problem (zip)"),
  );
  const model = h("input", { id: "imp-model", value: query.get("model") ?? "", placeholder: "new model" });
  const visibility = h("select", { id: "imp-vis" }, h("option", { value: "public" }, "public"), h("option", { value: "private" }, "private (you and administrators)"));
  const msg = h("div", { "aria-live": "polite" });
  const btn = h("button", { type: "submit", class: "primary" }, "Import");
  const field = (id: string, label: string, el: HTMLElement) => h("div", { class: "field" }, h("label", { for: id }, label), el);
  mount(
    main,
    h("h1", null, "Import a model"),
    h(
      "p",
      null,
      "An SBML file, a COMBINE/OMEX archive or a zipped PEtab problem. Importing the same content again changes nothing; changed content under an existing model id becomes a new version.",
    ),
    h(
      "form",
      {
        class: "sim",
        onsubmit: async (ev: Event) => {
          ev.preventDefault();
          const f = file.files?.[0];
          if (!f) return;
          const name = f.name.toLowerCase();
          const k = kind.value !== "auto" ? kind.value : name.endsWith(".omex") ? "omex" : name.endsWith(".zip") ? "petab" : "sbml";
          const type = k === "sbml" ? "application/sbml+xml" : k === "omex" ? "application/omex" : "application/zip";
          const qs = new URLSearchParams({ kind: k });
          if (model.value.trim()) qs.set("model", model.value.trim());
          qs.set("visibility", visibility.value);
          // The file name makes the server's error messages point at the right file.
          qs.set("name", f.name);
          btn.disabled = true;
          try {
            const r = await api<{ id: string; version: string; created?: boolean }>(`/api/models?${qs}`, { raw: { data: f, type } });
            mount(
              msg,
              h(
                "p",
                { class: "ok", id: "import-result" },
                r.created === false ? "Already in the catalogue (identical content): " : "Imported as ",
                h("a", { href: `#/models/${encodeURIComponent(r.id)}` }, r.id),
                ", version ",
                h("span", { class: "mono" }, r.version.slice(0, 12)),
                ".",
              ),
            );
          } catch (e) {
            mount(msg, errorBox(e));
          } finally {
            btn.disabled = false;
          }
        },
      },
      h("div", { class: "row" }, field("imp-file", "File", file), field("imp-kind", "Format", kind), field("imp-model", "Model id (for a new version)", model), field("imp-vis", "Visibility", visibility), h("div", { class: "field buttons" }, btn)),
      msg,
    ),
  );
}

export function usersPage(main: HTMLElement): void {
  const name = h("input", { id: "u-name", required: true });
  const role = h("select", { id: "u-role" }, ROLES.map((r) => h("option", { value: r, selected: r === "researcher" }, r)));
  const msg = h("div", { "aria-live": "polite" });
  const field = (id: string, label: string, el: HTMLElement) => h("div", { class: "field" }, h("label", { for: id }, label), el);
  mount(
    main,
    h("h1", null, "Users"),
    section(
      "Create a user",
      h(
        "form",
        {
          class: "sim",
          onsubmit: async (ev: Event) => {
            ev.preventDefault();
            try {
              const r = await api<{ id: string; token: string }>("/api/users", { body: { name: name.value.trim(), role: role.value } });
              const tok = h("input", { id: "u-token", readonly: true, value: r.token, size: 60, class: "mono" });
              mount(
                msg,
                h(
                  "div",
                  { class: "ok" },
                  h("p", null, `User ${name.value.trim()} (${role.value}) created with id `, h("span", { class: "mono" }, r.id), "."),
                  h("p", null, h("label", { for: "u-token" }, "API token (shown only now: copy it and give it to the user) "), tok),
                ),
              );
              tok.select();
            } catch (e) {
              mount(msg, errorBox(e));
            }
          },
        },
        h("div", { class: "row" }, field("u-name", "Name", name), field("u-role", "Role", role), h("div", { class: "field buttons" }, h("button", { type: "submit", class: "primary" }, "Create"))),
        msg,
      ),
    ),
  );
}
