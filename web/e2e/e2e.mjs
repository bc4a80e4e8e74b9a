// Browser end-to-end test of the OpenVHT UI, run by .ci/e2e against a real `vht serve`.
//
//   VHT_URL=http://127.0.0.1:PORT  E2E_OUT=target/e2e  node e2e.mjs
//
// Drives Debian's Chromium (CHROMIUM, default /usr/bin/chromium) headless through
// playwright-core, with a fresh profile. Checks: the catalogue lists the bundled example
// models; search narrows it; a model page runs a simulation and a plot with data
// appears (series pixels on the canvas and the numbers in the data table); changing a
// parameter and rerunning changes the plot. Screenshots go to E2E_OUT. Exits non-zero
// on the first failure, with what was expected and what was seen.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";

const axeSource = fs.readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const base = (process.env.VHT_URL ?? "http://127.0.0.1:8080").replace(/\/$/, "");
const out = process.env.E2E_OUT ?? "target/e2e";
const exe = process.env.CHROMIUM ?? "/usr/bin/chromium";
// The bundled example models (examples/models), found by the text of their catalogue
// cards (the server chooses the ids). The simulation steps use the repressilator and
// change one of its constant parameters.
const EXPECTED = [/repressilator/i, /dalla ?man/i];
const MODEL = /repressilator/i;
const PARAM = process.env.E2E_PARAM ?? "KM";
const TIMEOUT = 30_000;
// The first administrator's token (vht serve writes it to DATA_DIR/admin-token on first
// start): with it, the signed-in steps run too (runs with live status, trial report).
const TOKEN_FILE = process.env.E2E_TOKEN_FILE;

let passed = 0;
let failed = 0;
function check(cond, what, seen) {
  if (cond) {
    passed++;
    console.log(`ok   ${what}`);
  } else {
    failed++;
    console.log(`FAIL ${what}${seen === undefined ? "" : `: saw ${typeof seen === "string" ? seen : JSON.stringify(seen)}`}`);
  }
  return cond;
}

/** Runs axe-core (WCAG 2 A/AA rules) on the page; serious and critical violations fail. */
async function accessibility(page, what) {
  await page.addScriptTag({ content: axeSource });
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa"] } });
    return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id} (${v.nodes.length}): ${v.nodes[0]?.target?.join(" ")}`);
  });
  check(result.length === 0, `${what}: no serious accessibility violations (axe-core, WCAG 2 AA)`, result);
}

/** Counts the canvas pixels close to a series colour (the first series is #0072B2). */
async function seriesPixels(page, figure) {
  return page.evaluate((fig) => {
    const c = fig.querySelector("canvas");
    if (!c) return -1;
    const ctx = c.getContext("2d");
    const { data } = ctx.getImageData(0, 0, c.width, c.height);
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (Math.abs(data[i] - 0x00) < 40 && Math.abs(data[i + 1] - 0x72) < 40 && Math.abs(data[i + 2] - 0xb2) < 40 && data[i + 3] > 200) n++;
    }
    return n;
  }, figure);
}

/** The numbers of the data table under the plot, by column. */
async function tableValues(page) {
  return page.evaluate(() => {
    const t = document.querySelector("#sim-result table.data");
    if (!t) return null;
    const cols = [...t.querySelectorAll("thead th")].map((th) => th.textContent);
    const rows = [...t.querySelectorAll("tbody tr")].map((tr) => [...tr.querySelectorAll("td")].map((td) => Number(td.textContent)));
    return { cols, rows };
  });
}

/** Sign in, submit a run and watch it finish without reloading, open the example trial's report. */
async function signedIn(page, token, modelId) {
  // 6. Sign in with the token: the menus for a signed-in administrator appear.
  await page.goto(`${base}/#/login`);
  await page.fill("#token", token);
  await page.press("#token", "Enter");
  await page.waitForSelector("text=Signed in as");
  const nav = await page.$$eval("#nav a", (as) => as.map((a) => a.textContent));
  for (const item of ["Runs", "Governance", "Users"]) check(nav.includes(item), `an administrator's menu has ${item}`, nav);

  // 7. Submit a simulation run; its page follows the status by polling until it succeeds.
  await page.goto(`${base}/#/runs/new?kind=simulate&model=${encodeURIComponent(modelId)}`);
  await page.fill("#run-params", JSON.stringify({ start: 0, end: 50, points: 51 }));
  await page.click("form button[type=submit]");
  await page.waitForFunction(() => /^#\/runs\/[^/]+$/.test(location.hash) && !location.hash.endsWith("/new"));
  await page.waitForFunction(() => /succeeded|failed|cancelled/.test(document.querySelector("#run-status")?.textContent ?? ""), null, { timeout: 120_000 });
  const st = await page.textContent("#run-status");
  check(st?.includes("succeeded"), "the submitted run reaches succeeded on its page without a reload", st);
  const svg = await page.waitForFunction(() => [...document.querySelectorAll(".artifact-svg img")].some((i) => i.complete && i.naturalWidth > 0), null, { timeout: 20_000 }).then(() => true, () => false);
  check(svg, "the run's SVG plot is shown inline");

  // 8. The runs list shows the example runs with their status.
  await page.goto(`${base}/#/runs`);
  await page.waitForSelector("table.runs tbody tr");
  const kinds = await page.$$eval("table.runs tbody tr td:nth-child(2)", (tds) => tds.map((t) => t.textContent));
  check(kinds.includes("trial") && kinds.includes("simulate"), "the runs list shows the example trial and simulation runs", kinds);
  // The example trial runs in the server's worker: wait for it (the list refreshes itself).
  const trialDone = await page
    .waitForFunction(() => [...document.querySelectorAll("table.runs tbody tr")].some((tr) => tr.children[1]?.textContent === "trial" && tr.textContent?.includes("succeeded")), null, { timeout: 180_000 })
    .then(() => true, () => false);
  check(trialDone, "the example trial run succeeds (seen in the self-refreshing list)");
  await page.screenshot({ path: path.join(out, "runs.png") });
  await accessibility(page, "runs list");
  if (!trialDone) return;

  // 9. The trial report: a per-arm table and the plots.
  const trialRun = await page.$$eval("table.runs tbody tr", (trs) => trs.find((tr) => tr.children[1]?.textContent === "trial" && tr.textContent?.includes("succeeded"))?.getAttribute("data-run"));
  await page.goto(`${base}/#/trials/${encodeURIComponent(trialRun)}`);
  await page.waitForSelector("table.trial-arms tbody tr");
  const arms = await page.$$eval("table.trial-arms tbody th", (ths) => ths.map((t) => t.textContent));
  check(arms.length >= 2, "the trial report has a row per arm", arms);
  const plots = await page
    .waitForFunction(() => [...document.querySelectorAll(".plots img")].filter((i) => i.complete && i.naturalWidth > 0).length >= 2, null, { timeout: 20_000 })
    .then(() => true, () => false);
  check(plots, "the trial report shows its SVG plots");
  await page.screenshot({ path: path.join(out, "trial.png"), fullPage: true });
  await accessibility(page, "trial report");

  // 10. The example twin (made by a twin run at first start): its page predicts with bands.
  // The list does not poll: reload it until the twin run has stored its twin.
  let twinLink = null;
  for (const deadline = Date.now() + 300_000; Date.now() < deadline; await page.waitForTimeout(5000)) {
    await page.goto(`${base}/#/twins`);
    await page.reload();
    await page.waitForSelector("main table, main p.muted, main .error");
    twinLink = await page.$eval("main table a[href^='#/twins/']", (a) => a.getAttribute("href")).catch(() => null);
    if (twinLink) break;
  }
  check(twinLink !== null, "the example twin appears in the twins list");
  if (!twinLink) return;
  await page.goto(`${base}/${twinLink}`);
  const pred = await page.waitForSelector("#twin-pred figure.plot", { timeout: 120_000 }).then((f) => f, () => null);
  check(pred !== null, "the twin page shows a prediction plot");
  if (!pred) return;
  const bandNames = await pred.getAttribute("data-bands");
  check(Number(bandNames) >= 1, "the prediction plot has uncertainty bands", bandNames);
  check((await seriesPixels(page, pred)) > 200, "the prediction is drawn on the canvas");
  await page.screenshot({ path: path.join(out, "twin.png"), fullPage: true });
}

async function main() {
  fs.mkdirSync(out, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "vht-e2e-profile-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: exe,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(TIMEOUT);
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") pageErrors.push(`console: ${m.text()}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400) pageErrors.push(`HTTP ${r.status()} for ${r.request().method()} ${r.url()}`);
  });
  // Nothing may be fetched from outside the server (no CDN, no fonts).
  const foreign = [];
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith(base) && !u.startsWith("blob:") && !u.startsWith("data:")) foreign.push(u);
  });

  try {
    // 1. The catalogue lists the bundled examples.
    await page.goto(`${base}/`);
    await page.waitForSelector("li.card");
    const cards = () => page.$$eval("li.card", (els) => els.map((e) => ({ id: e.getAttribute("data-model"), text: e.textContent ?? "" })));
    const all = await cards();
    for (const re of EXPECTED) check(all.some((c) => re.test(c.text)), `catalogue lists a bundled model matching ${re}`, all.map((c) => c.id));
    const title = await page.textContent("h1");
    check(title?.includes("catalogue"), "catalogue page has its heading", title);
    await page.screenshot({ path: path.join(out, "catalogue.png") });
    await accessibility(page, "catalogue");

    // 2. Search narrows the list (keyboard only: type and press Enter).
    await page.fill("#q", "repressilator");
    await page.press("#q", "Enter");
    await page.waitForFunction(() => location.hash.includes("q=repressilator"));
    await page.waitForFunction(() => document.querySelectorAll("li.card").length > 0 && !/dalla ?man/i.test(document.querySelector("#results")?.textContent ?? ""));
    const found = await cards();
    const target = found.find((c) => MODEL.test(c.text));
    check(target !== undefined, `search "repressilator" finds the repressilator`, found.map((c) => c.id));
    check(!found.some((c) => /dalla ?man/i.test(c.text)), "search leaves out the other models", found.map((c) => c.id));

    // 3. Open the model page (keyboard: focus the link and press Enter).
    await page.focus(`li.card[data-model="${target.id}"] h2 a`);
    await page.keyboard.press("Enter");
    await page.waitForSelector("#run-sim");
    const heading = await page.textContent("h1");
    check(/repressilator/i.test(heading ?? ""), "model page shows the model's name", heading);
    const paramInput = page.locator(`input.val[data-id="${PARAM}"]`);
    check((await paramInput.count()) === 1, `model page has an input for parameter ${PARAM}`);

    // 4. Run a simulation: a plot with data appears.
    await page.fill("#sim-end", "200");
    await page.fill("#sim-points", "201");
    await page.click("#run-sim");
    const fig = await page.waitForSelector("#sim-result figure.plot");
    const nSeries = Number(await fig.getAttribute("data-series"));
    const nPoints = Number(await fig.getAttribute("data-points"));
    check(nSeries >= 1, "the plot has at least one series", nSeries);
    check(nPoints === 201, "the plot has the 201 requested points", nPoints);
    const px1 = await seriesPixels(page, fig);
    check(px1 > 200, "the first series is drawn on the canvas (pixels of its colour)", px1);
    const t1 = await tableValues(page);
    check(t1 && t1.rows.length > 10, "the data table under the plot has rows", t1?.rows.length);
    const finite1 = t1 ? t1.rows.flat().filter((v) => Number.isFinite(v)) : [];
    check(finite1.length > 0 && finite1.some((v) => v !== 0), "the simulated values are numbers, not all zero", finite1.slice(0, 8));
    const status1 = await page.textContent("#sim-status");
    await page.screenshot({ path: path.join(out, "simulation-first.png"), fullPage: false });

    // 5. Change a parameter and rerun: the plot changes.
    await fig.evaluate((el) => el.setAttribute("data-old", "1"));
    const before = Number(await paramInput.inputValue());
    const after = before > 0 ? before / 4 : 1;
    await paramInput.fill(String(after));
    await page.click("#run-sim");
    const fig2 = await page.waitForSelector("#sim-result figure.plot:not([data-old])");
    const px2 = await seriesPixels(page, fig2);
    check(px2 > 200, "the rerun plot is drawn", px2);
    const t2 = await tableValues(page);
    const status2 = await page.textContent("#sim-status");
    check(status2?.includes(`${PARAM} = ${after}`), `the status line names the changed parameter ${PARAM}`, status2);
    const differ = t1 && t2 && JSON.stringify(t1.rows) !== JSON.stringify(t2.rows);
    check(differ, `the simulated values change when ${PARAM} goes from ${before} to ${after}`, status1);
    // Scroll the plot into view for the screenshot (it sits below the settings).
    await fig2.scrollIntoViewIfNeeded();
    await page.evaluate(() => document.querySelector("#sim")?.closest("section")?.scrollIntoView());
    await page.screenshot({ path: path.join(out, "simulation.png") });
    await accessibility(page, "model page with a plot");

    if (TOKEN_FILE) await signedIn(page, fs.readFileSync(TOKEN_FILE, "utf8").trim(), target.id);
    else console.log("(E2E_TOKEN_FILE not set: the signed-in steps are not run)");

    check(pageErrors.length === 0, "no script errors in the page", pageErrors);
    check(foreign.length === 0, "no request left the server (no CDN, no external fonts)", foreign);
  } catch (e) {
    check(false, "the browser steps ran to the end", String(e));
    await page.screenshot({ path: path.join(out, "failure.png") }).catch(() => undefined);
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  console.log(`e2e: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
