import { getToken, setToken } from "../api";
import { h, mount } from "../dom";
import { loadSession, session } from "../state";
import { errorBox } from "../ui";

export function loginPage(main: HTMLElement, _p: Record<string, string>, _q: URLSearchParams, refreshNav: () => void): void {
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, size: 48 });
  const msg = h("div", { "aria-live": "polite" });
  const signedIn = () =>
    session.me
      ? h("p", null, "Signed in as ", h("strong", null, session.name), ` (${[...session.roles].join(", ") || "no role"}).`)
      : getToken()
        ? h("p", { class: "error" }, "The stored token was not accepted by the server.")
        : h("p", { class: "muted" }, "Not signed in: you can browse public models and run simulations of them.");
  const state = h("div", null, signedIn());
  mount(
    main,
    h("h1", null, "Sign in"),
    h("p", null, "Paste an API token (an administrator creates one with ", h("code", null, "POST /api/users"), "). It is kept in this browser's local storage only."),
    state,
    h(
      "form",
      {
        class: "login",
        onsubmit: async (ev: Event) => {
          ev.preventDefault();
          setToken(input.value.trim());
          try {
            await loadSession();
            if (!session.me) {
              setToken(null);
              mount(msg, errorBox("The server did not accept this token."));
            } else {
              input.value = "";
              mount(msg, h("p", { class: "ok" }, "Signed in."));
            }
          } catch (e) {
            mount(msg, errorBox(e));
          }
          mount(state, signedIn());
          refreshNav();
        },
      },
      h("label", { for: "token" }, "API token"),
      input,
      h("button", { type: "submit", class: "primary" }, "Sign in"),
    ),
    h(
      "p",
      null,
      h(
        "button",
        {
          type: "button",
          onclick: async () => {
            setToken(null);
            await loadSession();
            mount(state, signedIn());
            mount(msg, h("p", { class: "ok" }, "Signed out."));
            refreshNav();
          },
        },
        "Sign out",
      ),
    ),
    msg,
  );
}
