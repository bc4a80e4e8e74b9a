// OpenVHT web UI: a hash-routed single-page app (`/#/...`) so the server only has to
// serve index.html at `/` plus the hashed assets.
import "./style.css";
import { h, mount } from "./dom";
import { hasRole, loadSession, session } from "./state";
import { errorBox } from "./ui";
import { cataloguePage } from "./pages/catalogue";
import { modelPage } from "./pages/model";
import { loginPage } from "./pages/login";
import { newRunPage, runPage, runsPage } from "./pages/runs";
import { trialPage } from "./pages/trial";
import { twinPage, twinsPage } from "./pages/twins";
import { governancePage } from "./pages/governance";
import { importPage, usersPage } from "./pages/admin";
import { datasetPage, datasetsPage } from "./pages/datasets";

/** A page renders into `main` and may return a cleanup (e.g. to stop polling). */
type Page = (main: HTMLElement, params: Record<string, string>, query: URLSearchParams, refreshNav: () => void) => void | (() => void);

const routes: Array<[RegExp, string[], Page]> = [
  [/^\/?$/, [], cataloguePage],
  [/^\/models\/([^/]+)$/, ["id"], modelPage],
  [/^\/login$/, [], loginPage],
  [/^\/runs$/, [], runsPage],
  [/^\/runs\/new$/, [], newRunPage],
  [/^\/runs\/([^/]+)$/, ["id"], runPage],
  [/^\/trials\/([^/]+)$/, ["id"], trialPage],
  [/^\/twins$/, [], twinsPage],
  [/^\/twins\/([^/]+)$/, ["id"], twinPage],
  [/^\/governance$/, [], governancePage],
  [/^\/import$/, [], importPage],
  [/^\/datasets$/, [], datasetsPage],
  [/^\/datasets\/([^/]+)$/, ["id"], datasetPage],
  [/^\/users$/, [], usersPage],
];

const main = document.getElementById("main") as HTMLElement;
const nav = document.getElementById("nav") as HTMLElement;
const who = document.getElementById("who") as HTMLElement;
let cleanup: (() => void) | void;

function refreshNav(): void {
  const links: Array<[string, string]> = [["#/", "Catalogue"]];
  if (session.me) {
    links.push(["#/runs", "Runs"], ["#/twins", "Twins"], ["#/datasets", "Datasets"]);
    if (hasRole("modeller")) links.push(["#/import", "Import"]);
    if (hasRole("data_steward")) links.push(["#/governance", "Governance"]);
    if (session.roles.has("admin")) links.push(["#/users", "Users"]);
  }
  const current = "#" + (location.hash.slice(1).split("?")[0] || "/");
  mount(
    nav,
    h(
      "ul",
      null,
      links.map(([href, label]) =>
        h("li", null, h("a", { href, "aria-current": current === href || (href !== "#/" && current.startsWith(href)) ? "page" : false }, label)),
      ),
    ),
  );
  mount(
    who,
    session.me
      ? h("a", { href: "#/login", title: "Account" }, `${session.name} · ${[...session.roles].join(", ")}`)
      : h("a", { href: "#/login" }, "Sign in"),
  );
}

function route(): void {
  if (cleanup) cleanup();
  cleanup = undefined;
  const raw = location.hash.slice(1) || "/";
  const [path, qs] = raw.split("?", 2);
  const query = new URLSearchParams(qs ?? "");
  refreshNav();
  for (const [re, names, page] of routes) {
    const m = re.exec(path);
    if (!m) continue;
    const params: Record<string, string> = {};
    names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1])));
    try {
      cleanup = page(main, params, query, refreshNav);
    } catch (e) {
      mount(main, errorBox(e));
    }
    return;
  }
  mount(main, h("h1", null, "Not found"), h("p", null, "No page at ", h("code", null, path), ". ", h("a", { href: "#/" }, "Back to the catalogue"), "."));
}

window.addEventListener("hashchange", () => {
  route();
  main.focus({ preventScroll: false });
});

loadSession()
  .catch(() => undefined)
  .finally(route);
