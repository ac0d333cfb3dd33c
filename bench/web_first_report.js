// Time to first report in the web app, in Debian's Chromium (playwright-core from tests/browser/node_modules):
// logs in once, then per run opens a fresh page at a report's URL and waits until its numbers and chart are
// drawn. Prints JSON: {runs: {name: [ms...]}, weight: {name: {static_bytes, static_encoded, api_encoded}}}.
// Input (argv[2], JSON): {chromium, base, email, password, repeat, reports: [{name, hash, ready}]}
"use strict";
const { chromium } = require("playwright-core");

(async () => {
  const input = JSON.parse(process.argv[2]);
  const browser = await chromium.launch({ executablePath: input.chromium, headless: true, args: ["--no-sandbox", "--disable-gpu"] });
  const out = { runs: {}, page_share: {}, weight: {} };
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const login = await context.newPage();
    await login.goto(input.base + "/");
    await login.fill("input[name=email]", input.email);
    await login.fill("input[name=password]", input.password);
    await login.click("button[type=submit]");
    await login.waitForFunction(() => document.body.dataset.view === "insights" && document.body.dataset.ready === "1");
    await login.close();
    // Each report twice: "cold", every request sent to the server (request interception keeps the browser's
    // cache out), and "cached", a returning visitor whose browser keeps what the server let it keep.
    for (const report of input.reports.flatMap((r) => [{ ...r, cold: true }, { ...r, name: r.name + " (cached)", cold: false }])) {
      out.runs[report.name] = [];
      out.page_share[report.name] = [];
      for (let i = 0; i < input.repeat + 1; i++) { // the first run warms caches and is left out
        const page = await context.newPage();
        if (report.cold) await page.route("**/*", (route) => route.continue({ headers: { ...route.request().headers(), "cache-control": "no-cache" } }));
        await page.goto(`${input.base}/${report.hash}`);
        await page.waitForSelector(report.ready, { timeout: 120000 });
        await page.waitForFunction(() => document.body.dataset.ready === "1", null, { timeout: 120000 });
        // The moment the chart was drawn (the page marks it), from navigation start; and the page's own
        // share of it: up to the moment its first report request (Query or App API) left.
        const [ms, share] = await page.evaluate(() => [performance.getEntriesByName("mixhouse:chart-drawn").at(-1).startTime,
          Math.min(...performance.getEntriesByType("resource").filter((e) => /\/api\//.test(e.name)).map((e) => e.startTime))]);
        if (i > 0) { out.runs[report.name].push(ms); out.page_share[report.name].push(share); }
        if (i === input.repeat) {
          out.weight[report.name] = await page.evaluate(() => {
            const all = [performance.getEntriesByType("navigation")[0], ...performance.getEntriesByType("resource")];
            const isApi = (e) => /\/(api|web)\//.test(e.name);
            const sum = (list, k) => list.reduce((a, e) => a + (e[k] || 0), 0);
            const stat = all.filter((e) => !isApi(e));
            return { static_bytes: sum(stat, "decodedBodySize"), static_encoded: sum(stat, "encodedBodySize"),
              api_encoded: sum(all.filter(isApi), "encodedBodySize"), requests: all.length,
              timeline: all.map((e) => [e.name.replace(location.origin, "").slice(0, 60), Math.round(e.startTime), Math.round(e.responseEnd)]) };
          });
        }
        await page.close();
      }
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out) + "\n");
})().catch((err) => { process.stderr.write(String(err && err.stack ? err.stack : err) + "\n"); process.exit(1); });
