// Development only: a tiny stand-in for `vht serve` that answers the API contract with
// fixtures, and serves web/dist, so the UI can be worked on before (or without) the
// real server. The browser test (web/e2e) never uses it: it runs against `vht serve`.
//
//   node dev/mock-server.mjs [port]      then open http://127.0.0.1:PORT/
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const dist = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "dist");
const port = Number(process.argv[2] ?? 8090);

const models = [
  {
    id: "repressilator",
    name: "Elowitz2000 - Repressilator",
    description: "A synthetic oscillatory network of transcriptional regulators in E. coli.",
    latest_version: "a1b2c3d4e5f6a7b8c9d0",
    authors: ["Elowitz MB", "Leibler S"],
    tags: ["oscillation", "gene regulation"],
    visibility: "public",
  },
  {
    id: "dallaman2007_meal",
    name: "Dalla Man 2007 - Meal glucose-insulin model",
    description: "Glucose and insulin after a meal in healthy and type 2 diabetic subjects.",
    latest_version: "0f9e8d7c6b5a49382716",
    authors: ["Dalla Man C", "Rizza RA", "Cobelli C"],
    tags: ["glucose", "insulin"],
    visibility: "public",
  },
];
const variables = {
  species: [
    { id: "A", name: "decaying", initial: 10 },
    { id: "B", name: "product", initial: 0 },
  ],
  parameters: [{ id: "k", name: "rate", value: 0.1 }],
  compartments: [{ id: "cell", name: "cell", size: 1 }],
};
const runs = [
  { id: "run000000000001", kind: "trial", model: "dallaman2007_meal", version: "latest", status: "succeeded", progress: 1, created: "2026-01-01T10:00:00Z", started: "2026-01-01T10:00:01Z", finished: "2026-01-01T10:00:09Z", error: null, artifacts: [{ name: "summary.json", media_type: "application/json", size: 900 }, { name: "report.md", media_type: "text/markdown", size: 300 }, { name: "hist.svg", media_type: "image/svg+xml", size: 400 }] },
  { id: "run000000000002", kind: "simulate", model: "repressilator", version: "latest", status: "running", progress: 0.4, created: "2026-01-01T11:00:00Z", started: "2026-01-01T11:00:01Z", finished: null, error: null, artifacts: [] },
];

function send(res, status, body, type = "application/json") {
  res.writeHead(status, { "Content-Type": type });
  res.end(type === "application/json" ? JSON.stringify(body) : body);
}

function simulate(req) {
  const k = req.set?.k ?? 0.1;
  const a0 = req.set?.A ?? 10;
  const n = Math.max(2, Math.min(10000, req.points ?? 101));
  const time = [], A = [], B = [];
  for (let i = 0; i < n; i++) {
    const t = req.start + ((req.end - req.start) * i) / (n - 1);
    time.push(t);
    A.push(a0 * Math.exp(-k * t));
    B.push(a0 * (1 - Math.exp(-k * t)));
  }
  const sel = req.select?.length ? req.select : ["A", "B"];
  const all = { A, B };
  return { columns: ["time", ...sel], rows: time.map((t, i) => [t, ...sel.map((s) => all[s][i])]) };
}

async function body(req) {
  let s = "";
  for await (const c of req) s += c;
  return s ? JSON.parse(s) : {};
}

http
  .createServer(async (req, res) => {
    const url = new URL(req.url, "http://x");
    const p = url.pathname;
    let m;
    if (p === "/api/me") return req.headers.authorization ? send(res, 200, { user: { name: "ada" }, roles: ["admin"], projects: [] }) : send(res, 401, { error: { code: "unauthorized", message: "token required" } });
    if (p === "/api/models") {
      const q = (url.searchParams.get("q") ?? "").toLowerCase();
      const items = models.filter((x) => !q || JSON.stringify(x).toLowerCase().includes(q));
      return send(res, 200, { items, total: items.length });
    }
    if ((m = p.match(/^\/api\/models\/([^/]+)$/))) {
      const x = models.find((y) => y.id === m[1]);
      if (!x) return send(res, 404, { error: { code: "not_found", message: `no model ${m[1]}` } });
      return send(res, 200, { ...x, versions: [{ version: x.latest_version, created: "2026-01-01T00:00:00Z", source: "sbml" }], evidence: [{ kind: "conformance", passed: true, detail: "SBML Test Suite 3.3.0" }] });
    }
    if (p.match(/^\/api\/models\/[^/]+\/versions\/[^/]+\/variables$/)) return send(res, 200, variables);
    if (p === "/api/simulate" && req.method === "POST") return send(res, 200, simulate(await body(req)));
    if (p === "/api/runs") return send(res, 200, { items: runs, total: runs.length });
    if ((m = p.match(/^\/api\/runs\/([^/]+)$/))) return send(res, 200, runs.find((r) => r.id === m[1]) ?? runs[0]);
    if (p.match(/^\/api\/runs\/[^/]+\/logs$/)) return send(res, 200, "started\nsimulated 40 patients\n", "text/plain");
    if ((m = p.match(/^\/api\/runs\/[^/]+\/artifacts\/(.+)$/))) {
      if (m[1] === "report.md") return send(res, 200, "# Trial report\n\n| arm | n |\n|---|---|\n| control | 40 |\n", "text/markdown");
      if (m[1].endsWith(".svg")) return send(res, 200, '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100"><rect width="200" height="100" fill="#def"/><text x="10" y="50">plot</text></svg>', "image/svg+xml");
      return send(res, 200, { trial: "meal", arms: [{ name: "control", patients: 40, ok: 40, failed: 0, endpoints: [{ name: "G_max", n: 40, mean: 9.28, sd: 0.58, quantiles: [[0.5, 9.4]] }] }], comparisons: [] });
    }
    if (p === "/api/twins") return send(res, 200, { items: [{ id: "twin1", name: "patient 7", model: "dallaman2007_meal", version: "0f9e8d7c6b5a49382716" }] });
    if (p.startsWith("/api/twins/")) {
      const time = Array.from({ length: 50 }, (_, i) => i * 8);
      const G = time.map((t) => 5 + 4 * Math.exp(-((t - 60) ** 2) / 2000));
      return send(res, 200, { id: "twin1", name: "patient 7", model: "dallaman2007_meal", parameters: { k_abs: { value: 0.06, sd: 0.01 } }, provenance: { dataset: "ds1" }, predictions: { time, series: { G: { median: G, lower: G.map((g) => g * 0.9), upper: G.map((g) => g * 1.1) } } } });
    }
    if (p === "/api/permits") return send(res, 200, { items: [{ id: "permit1", project: "p1", dataset: "ds1", purpose: "study", valid_from: "2026-01-01T00:00:00Z", valid_until: "2027-01-01T00:00:00Z", revoked: false }] });
    if (p === "/api/audit") return send(res, 200, { items: [{ seq: 1, time: "2026-01-01T00:00:00Z", actor: "steward", action: "permit.grant", object: "ds1", permit: "permit1", prev_hash: "00", hash: "abcdef0123456789" }] });
    if (p === "/api/audit/verify") return send(res, 200, { ok: true, first_bad_seq: null });
    if (p.startsWith("/api/")) return send(res, 404, { error: { code: "not_found", message: p } });
    const file = path.join(dist, p === "/" ? "index.html" : path.normalize(p).replace(/^(\.\.[/\\])+/, ""));
    if (!file.startsWith(dist) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) return send(res, 404, "not found", "text/plain");
    const ext = path.extname(file);
    const type = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml" }[ext] ?? "application/octet-stream";
    send(res, 200, fs.readFileSync(file), type);
  })
  .listen(port, "127.0.0.1", () => console.log(`mock API and UI on http://127.0.0.1:${port}/`));
