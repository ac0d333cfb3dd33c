// Drives the page in Debian's Chromium with playwright-core, once per SDK configuration, each in a
// fresh browser context, and prints one JSON object describing what happened.
//
// Input (argv[2], JSON): {chromium, page, api, runs: [{name, cfg}], timeout_ms}
//   page: the page URL without query; api: the mixhouse base URL.
// Output (stdout, JSON): {runs: [{name, device_id, anon_distinct_id, console_errors, page_errors,
//   mp_errors, requests, preflights, settled}]}
"use strict";
const { chromium } = require("playwright-core");

const ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];
const QUIET_MS = 400;

async function runOne(browser, input, run) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const out = {
    name: run.name, device_id: null, anon_distinct_id: null, console_errors: [], page_errors: [],
    mp_errors: [], requests: [], settled: false,
  };
  const inflight = new Set();
  let lastActivity = Date.now();
  const isApi = (url) => url.startsWith(input.api + "/");

  page.on("console", (msg) => {
    if (msg.type() === "error") out.console_errors.push({ text: msg.text(), url: msg.location().url || "" });
  });
  page.on("pageerror", (err) => out.page_errors.push(String(err && err.stack ? err.stack : err)));
  page.on("request", (req) => {
    if (!isApi(req.url())) return;
    inflight.add(req);
    lastActivity = Date.now();
  });
  const finish = async (req, failure) => {
    if (!isApi(req.url())) return;
    const entry = {
      method: req.method(), url: req.url(), resource_type: req.resourceType(),
      headers: await req.allHeaders().catch(() => ({})), post_data: req.postData(),
      status: null, body: null, failure: failure || null,
    };
    const resp = failure ? null : await req.response().catch(() => null);
    if (resp) {
      entry.status = resp.status();
      entry.body = await resp.text().catch(() => null);
    }
    out.requests.push(entry);
    inflight.delete(req);
    lastActivity = Date.now();
  };
  page.on("requestfinished", (req) => finish(req, null));
  // Playwright's request events leave out CORS preflights; the DevTools protocol reports them.
  const cdp = await context.newCDPSession(page);
  const preflights = new Map();
  cdp.on("Network.requestWillBeSent", (e) => {
    if (isApi(e.request.url) && (e.type === "Preflight" || e.request.method === "OPTIONS")) {
      preflights.set(e.requestId, { url: e.request.url, headers: e.request.headers, status: null });
    }
  });
  cdp.on("Network.responseReceived", (e) => {
    const preflight = preflights.get(e.requestId);
    if (preflight) preflight.status = e.response.status;
  });
  await cdp.send("Network.enable");
  page.on("requestfailed", (req) => finish(req, (req.failure() || {}).errorText || "failed"));

  const query = new URLSearchParams({ api: input.api, run: run.name, cfg: JSON.stringify(run.cfg) });
  const deadline = Date.now() + input.timeout_ms;
  try {
    await page.goto(`${input.page}?${query}`, { timeout: input.timeout_ms });
    await page.waitForFunction(() => window.done === true, null, { timeout: input.timeout_ms });
    out.device_id = await page.evaluate(() => window.deviceId);
    out.anon_distinct_id = await page.evaluate(() => window.anonDistinctId);
    // Settled: nothing in flight, nothing left in the SDK's batch queues, and a quiet moment.
    while (Date.now() < deadline) {
      const queued = await page.evaluate(() => window.pendingInSdk());
      if (queued === 0 && inflight.size === 0 && Date.now() - lastActivity >= QUIET_MS) {
        out.settled = true;
        break;
      }
      await page.waitForTimeout(100);
    }
    out.mp_errors = await page.evaluate(() => window.mpErrors);
  } catch (err) {
    out.page_errors.push("driver: " + String(err && err.message ? err.message : err));
  }
  out.preflights = [...preflights.values()];
  await context.close();
  return out;
}

(async () => {
  const input = JSON.parse(process.argv[2]);
  const browser = await chromium.launch({ executablePath: input.chromium, headless: true, args: ARGS });
  const runs = [];
  try {
    for (const run of input.runs) runs.push(await runOne(browser, input, run));
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify({ runs }) + "\n");
})().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});
