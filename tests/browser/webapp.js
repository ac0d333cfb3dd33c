// Drives mixhouse's web app in Debian's Chromium (playwright-core) the way a person would: logs in, builds
// an Insights report with a breakdown and a filter, saves it, adds it to a dashboard and opens that, builds
// a funnel and a retention report, searches users and opens a profile, opens the Lexicon. Takes a
// screenshot of each page and prints one JSON object with the numbers each page shows.
//
// Input (argv[2], JSON): {chromium, base, email, consumer_email, password, from, to, shots, profile_id, profile_from,
// profile_to}
"use strict";
const { chromium } = require("playwright-core");
const path = require("path");

const ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"];

async function ready(page) {
  await page.waitForFunction(() => document.body.dataset.ready === "1", null, { timeout: 20000 });
}
async function go(page, hash) {
  await page.evaluate((h) => { document.body.dataset.ready = "0"; location.hash = h; }, hash);
  await ready(page);
}
async function clickAndWait(page, locator) {
  await page.evaluate(() => { document.body.dataset.ready = "0"; });
  await locator.click();
  await ready(page);
}
// Every numbers table under root: {series: {key: value}}.
async function table(page, root) {
  return page.$$eval(`${root} table.numbers tbody tr[data-series]`, (rows) => Object.fromEntries(rows.map((r) => [
    r.dataset.series, Object.fromEntries([...r.querySelectorAll("td[data-key]")].map((td) => [td.dataset.key, Number(td.dataset.value)])),
  ])));
}
async function shot(page, input, name) {
  await page.waitForTimeout(150); // the chart draws on the next animation frame
  const file = path.join(input.shots, name + ".png");
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

async function scenario(page, input, out) {
  const { from, to } = input;
  await page.goto(input.base + "/");
  await page.waitForSelector("form input[name=email]");
  out.shots.push(await shot(page, input, "01-login"));
  out.nav_hidden_at_login = await page.isHidden("#top");
  await page.fill("input[name=email]", input.email);
  await page.fill("input[name=password]", input.password);
  await clickAndWait(page, page.locator("button[type=submit]"));
  out.after_login_view = await page.evaluate(() => document.body.dataset.view);
  out.cookies_logged_in = await page.context().cookies();
  out.page_can_read_cookie = await page.evaluate(() => document.cookie.includes("mixhouse_session"));

  // Insights: dates, event, breakdown, a where filter from the builder, bar chart, run.
  await page.fill("input[name=from]", from);
  await page.fill("input[name=to]", to);
  await clickAndWait(page, page.locator("form.controls button[type=submit]"));
  await page.evaluate(() => { document.body.dataset.ready = "0"; });
  await page.selectOption("select[name=event]", "Signed Up"); // a new event re-renders with its properties
  await ready(page);
  await page.selectOption("select[name=on]", "plan");
  await page.selectOption("select[name=type]", "unique");
  await page.selectOption("select[name=chart]", "bar");
  await page.click("text=+ where");
  await page.fill("input[name=filter-property]", "country");
  await page.selectOption("select[name=filter-op]", "!=");
  await page.fill("input[name=filter-value]", "DE");
  out.where = await page.inputValue("textarea[name=where]");
  await clickAndWait(page, page.locator("form.controls button[type=submit]"));
  await page.waitForSelector("#result[data-loaded] table.numbers");
  out.where_rows_after_run = await page.$$eval(".filters .row:has(input[name=filter-property])", (rows) => rows.map((r) => [
    r.querySelector("[name=filter-property]").value, r.querySelector("[name=filter-op]").value, r.querySelector("[name=filter-value]").value]));
  out.insights = { hash: await page.evaluate(() => location.hash), table: await table(page, "#result"),
    canvases: await page.$$eval("#result canvas", (c) => c.length) };
  out.shots.push(await shot(page, input, "02-insights"));

  // Annotations on the chart: the project's, as markers reachable with Tab; one added from the chart by
  // clicking the fifth day's bar (10 bars across the plot: its centre is at 45% of the width).
  await page.waitForSelector("#result .notes[data-loaded]");
  const notes = async () => ({
    listed: await page.$$eval("#result li[data-annotation]", (li) => li.map((x) => [Number(x.dataset.annotation), x.dataset.date, x.textContent])),
    marks: await page.$$eval("#result .note-mark", (b) => b.map((x) => x.getAttribute("aria-label"))),
  });
  out.annotations = { before: await notes(), form: await page.isVisible("#result form.annotate") };
  await page.focus("textarea[name=where]");
  await page.keyboard.press("Tab");
  out.annotations.tab = await page.evaluate(() => ({ cls: document.activeElement.className, label: document.activeElement.getAttribute("aria-label"),
    tip: getComputedStyle(document.activeElement.nextElementSibling).display }));
  out.shots.push(await shot(page, input, "02b-insights-annotation-focused"));
  const over = await page.locator("#result .u-over").boundingBox();
  await page.mouse.move(over.x + over.width * 0.45, over.y + over.height * 0.5);
  await page.mouse.click(over.x + over.width * 0.45, over.y + over.height * 0.5);
  out.annotations.clicked_date = await page.inputValue("input[name=annotation-date]");
  out.annotations.focused_after_click = await page.evaluate(() => document.activeElement.name);
  await page.keyboard.type("Referral bonus started");
  await page.click("text=Add annotation");
  await page.waitForFunction(() => document.querySelectorAll("#result li[data-annotation]").length === 4);
  out.annotations.after = await notes();
  out.shots.push(await shot(page, input, "02c-insights-annotation-added"));

  // Save it, then add it to a new dashboard and open the dashboard.
  await page.fill("input[name=report-name]", "Sign-ups by plan");
  await clickAndWait(page, page.locator("text=Save report"));
  await page.waitForSelector("[data-bookmark] .notes[data-loaded]");
  out.bookmark = { hash: await page.evaluate(() => location.hash), table: await table(page, "[data-bookmark]"),
    annotations: await page.$$eval("[data-bookmark] li[data-annotation]", (li) => li.map((x) => Number(x.dataset.annotation))) };
  out.shots.push(await shot(page, input, "03-saved-report"));
  await page.fill("input[name=dashboard-name]", "Growth");
  await page.click("text=Add to dashboard");
  await page.waitForSelector("text=Added to Growth");
  await clickAndWait(page, page.locator("text=Added to Growth"));
  out.dashboard = { hash: await page.evaluate(() => location.hash), title: await page.textContent("h1"),
    table: await table(page, "[data-bookmark]") };
  out.shots.push(await shot(page, input, "04-dashboard"));
  // A second dashboard, emptied again from the page.
  await go(page, out.bookmark.hash);
  await page.fill("input[name=dashboard-name]", "Scratch");
  await page.click("text=Add to dashboard");
  await clickAndWait(page, page.locator("text=Added to Scratch"));
  await clickAndWait(page, page.locator("text=Remove from dashboard"));
  out.emptied_dashboard_cards = await page.$$eval("[data-bookmark]", (c) => c.length);

  // Funnels: two steps, saved and run over the range.
  await go(page, `#/funnels?from=${from}&to=${to}`);
  await page.fill("input[name=funnel-name]", "Sign-up to purchase");
  const steps = page.locator("select[name=step]");
  await steps.nth(0).selectOption("Signed Up");
  await steps.nth(1).selectOption("Purchase");
  await clickAndWait(page, page.locator("text=Save funnel and run"));
  await page.waitForSelector("[data-funnel] .step");
  out.funnel = { hash: await page.evaluate(() => location.hash),
    counts: await page.$$eval("[data-funnel] .step", (s) => s.map((x) => Number(x.dataset.count))),
    ratios: await page.$$eval("[data-funnel] .step [data-ratio]", (s) => s.map((x) => Number(x.dataset.ratio))) };
  out.shots.push(await shot(page, input, "05-funnel"));
  await page.selectOption("select[name=on]", "plan");
  await clickAndWait(page, page.locator("text=Save and run"));
  await page.waitForSelector("[data-funnel] table.numbers");
  out.funnel_breakdown = { hash: await page.evaluate(() => location.hash),
    segments: await page.$$eval("[data-funnel] table.numbers tr[data-series]", (rows) => Object.fromEntries(rows.map((r) => [
      r.dataset.series, [...r.querySelectorAll("td[data-value]")].map((td) => Number(td.dataset.value))]))) };
  out.shots.push(await shot(page, input, "05b-funnel-breakdown"));
  // The funnel joins the saved report on the Growth dashboard.
  await page.selectOption("select[name=dashboard]", { label: "Growth" });
  await page.click("text=Add to dashboard");
  await clickAndWait(page, page.locator("text=Added to Growth"));
  await page.waitForSelector("[data-funnel] .step");
  out.dashboard_with_funnel = { cards: await page.$$eval(".report", (c) => c.map((x) => x.dataset.bookmark ? "bookmark" : "funnel")),
    counts: await page.$$eval("[data-funnel] .step", (s) => s.map((x) => Number(x.dataset.count))) };
  out.shots.push(await shot(page, input, "05c-dashboard-with-funnel"));

  // Retention: born on Signed Up, returning with Viewed Page, daily, 5 intervals.
  await go(page, `#/retention?from=${from}&to=${to}`);
  await page.selectOption("select[name=born_event]", "Signed Up");
  await page.selectOption("select[name=event]", "Viewed Page");
  await page.fill("input[name=interval_count]", "5");
  await clickAndWait(page, page.locator("form.controls button[type=submit]"));
  await page.waitForSelector("#result[data-loaded] table.heat");
  out.retention = { hash: await page.evaluate(() => location.hash),
    cohorts: await page.$$eval("table.heat tbody tr", (rows) => Object.fromEntries(rows.map((r) => [r.dataset.cohort, {
      first: Number(r.querySelector("[data-first]").dataset.first),
      counts: [...r.querySelectorAll("td.cell")].map((td) => Number(td.dataset.value)) }]))) };
  out.shots.push(await shot(page, input, "06-retention"));
  await page.selectOption("select[name=retention_type]", "compounded");
  await clickAndWait(page, page.locator("form.controls button[type=submit]"));
  await page.waitForSelector("#result[data-loaded] table.heat");
  out.retention_compounded = { hash: await page.evaluate(() => location.hash),
    cohorts: await page.$$eval("table.heat tbody tr", (rows) => Object.fromEntries(rows.map((r) => [r.dataset.cohort, {
      first: Number(r.querySelector("[data-first]").dataset.first),
      counts: [...r.querySelectorAll("td.cell")].map((td) => Number(td.dataset.value)) }]))) };

  // Users: every profile, in pages of 100.
  await go(page, "#/users");
  out.users_pages = [{ ids: await page.$$eval("tr[data-user]", (rows) => rows.map((r) => r.dataset.user)),
    total: await page.$eval("[data-total]", (p) => p.dataset.total), text: await page.textContent("[data-total]") }];
  await clickAndWait(page, page.locator("a[rel=next]").first());
  out.users_pages.push({ hash: await page.evaluate(() => location.hash), ids: await page.$$eval("tr[data-user]", (rows) => rows.map((r) => r.dataset.user)),
    text: await page.textContent("[data-total]"), next: await page.locator("a[rel=next]").count() });
  out.shots.push(await shot(page, input, "07a-users-page-2"));
  await clickAndWait(page, page.locator("a[rel=prev]").first());
  out.users_pages.push({ ids: await page.$$eval("tr[data-user]", (rows) => rows.map((r) => r.dataset.user)), text: await page.textContent("[data-total]") });

  // Users: search with a where, open a profile and its activity stream.
  await go(page, "#/users");
  await page.fill("input[name=where]", 'user["plan"] == "pro"');
  await clickAndWait(page, page.locator("form.controls button[type=submit]"));
  out.users = await page.$$eval("tr[data-user]", (rows) => rows.map((r) => r.dataset.user));
  // Saved as a cohort: the page then lists the cohort's members.
  await page.fill("input[name=cohort-name]", "Pro users");
  await clickAndWait(page, page.locator("text=Save as cohort"));
  out.cohort = { hash: await page.evaluate(() => location.hash), label: await page.$eval("select[name=cohort]", (s) => s.selectedOptions[0].textContent),
    users: await page.$$eval("tr[data-user]", (rows) => rows.map((r) => r.dataset.user)) };
  out.shots.push(await shot(page, input, "07-users"));
  await clickAndWait(page, page.locator(`tr[data-user="${input.profile_id}"] a`));
  await page.fill("input[name=from]", input.profile_from);
  await page.fill("input[name=to]", input.profile_to);
  await clickAndWait(page, page.locator("text=Show"));
  out.profile = { hash: await page.evaluate(() => location.hash),
    stream: await page.$$eval("ul.stream li", (li) => li.map((x) => [x.dataset.event, Number(x.dataset.time)])) };
  out.shots.push(await shot(page, input, "08-profile"));

  // Lexicon.
  await go(page, `#/lexicon?from=${from}&to=${to}&event=Signed%20Up`);
  out.lexicon = { events: await table(page, ".grid section:nth-child(1)"),
    events_values: await page.$$eval(".grid section:nth-child(1) tr[data-series]", (r) => Object.fromEntries(r.map((x) => [x.dataset.series, Number(x.querySelector("td[data-value]").dataset.value)]))),
    properties: await page.$$eval(".grid section:nth-child(2) tr[data-series]:has(td[data-value])", (r) => Object.fromEntries(r.map((x) => [x.dataset.series, Number(x.querySelector("td[data-value]").dataset.value)]))),
    event_descriptions: await page.$$eval(".grid section:nth-child(1) tr[data-series]", (r) => Object.fromEntries(r.map((x) => [x.dataset.series, x.querySelector("td.desc").dataset.description]))),
    event_labels: await page.$$eval(".grid section:nth-child(1) tr[data-series] th a", (a) => a.map((x) => x.textContent)),
    property_schema: await page.$$eval(".grid section:nth-child(2) tr[data-series]", (r) => Object.fromEntries(r.map((x) => [x.dataset.series,
      [x.dataset.type, x.querySelector("td.desc").dataset.description, x.querySelector("td[data-value]") ? Number(x.querySelector("td[data-value]").dataset.value) : null]]))) };
  out.shots.push(await shot(page, input, "09-lexicon"));

  // Two events on one chart, then saved (a bookmark with a list of events).
  await go(page, `#/insights?event=Signed%20Up&from=${from}&to=${to}&unit=day`);
  await page.click("text=+ event");
  await page.selectOption("select[name=also]", "Purchase");
  await clickAndWait(page, page.locator("form.controls button[type=submit]"));
  await page.waitForSelector("#result[data-loaded] table.numbers");
  out.two_events = { hash: await page.evaluate(() => location.hash), table: await table(page, "#result") };
  await page.fill("input[name=report-name]", "Sign-ups and purchases");
  await clickAndWait(page, page.locator("text=Save report"));
  out.two_events_saved = { hash: await page.evaluate(() => location.hash), table: await table(page, "[data-bookmark]") };
  out.shots.push(await shot(page, input, "09b-two-events"));

  // The saved report on a phone, reached with the keyboard alone from the page's top.
  await page.setViewportSize({ width: 390, height: 844 });
  await go(page, out.bookmark.hash);
  out.phone_overflow = { report: await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth) };
  out.shots.push(await shot(page, input, "10-phone-report"));
  const views = { insights: out.insights.hash, funnel: out.funnel_breakdown.hash, retention: out.retention.hash,
    users: "#/users", profile: out.profile.hash, lexicon: `#/lexicon?from=${from}&to=${to}`, dashboard: out.dashboard.hash };
  for (const [name, hash] of Object.entries(views)) {
    await go(page, hash);
    await page.waitForTimeout(100);
    out.phone_overflow[name] = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  }
  out.shots.push(await shot(page, input, "11-phone-dashboard"));
  await go(page, out.insights.hash);
  await page.waitForSelector("#result .notes[data-loaded]");
  out.phone_overflow.insights_annotated = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  out.shots.push(await shot(page, input, "12-phone-insights-annotations"));
  await go(page, `#/lexicon?from=${from}&to=${to}&event=Signed%20Up`);
  out.phone_overflow.lexicon_schema = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  out.shots.push(await shot(page, input, "13-phone-lexicon"));
  await go(page, out.users_pages[1].hash);
  out.phone_overflow.users_page_2 = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  out.shots.push(await shot(page, input, "14-phone-users-page-2"));
  await page.setViewportSize({ width: 1280, height: 900 });
  await go(page, "#/insights");
  await page.focus(".skip"); // the first stop of the page
  const reached = [];
  for (let i = 0; i < 12; i++) {
    await page.keyboard.press("Tab");
    reached.push(await page.evaluate(() => (document.activeElement.textContent || document.activeElement.name || "").trim()));
  }
  out.tab_order = reached;

  // Log out: the page shows the login form again and the API refuses the old cookie.
  await page.click("#logout");
  await page.waitForSelector("form input[name=email]");
  out.after_logout_view = await page.evaluate(() => document.body.dataset.view);

  // A consumer sees the annotations but is offered no form to add one.
  await page.fill("input[name=email]", input.consumer_email);
  await page.fill("input[name=password]", input.password);
  await clickAndWait(page, page.locator("button[type=submit]"));
  await go(page, out.insights.hash);
  await page.waitForSelector("#result .notes[data-loaded]");
  out.consumer = { listed: await page.$$eval("#result li[data-annotation]", (li) => li.map((x) => Number(x.dataset.annotation))),
    form: await page.locator("#result form.annotate").count(), text: await page.textContent("#result .notes") };
  out.shots.push(await shot(page, input, "15-consumer-insights"));
  await page.click("#logout");
  await page.waitForSelector("form input[name=email]");
}

(async () => {
  const input = JSON.parse(process.argv[2]);
  const browser = await chromium.launch({ executablePath: input.chromium, headless: true, args: ARGS });
  const out = { shots: [], console_errors: [], page_errors: [], failed: [] };
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.on("console", (m) => { if (m.type() === "error") out.console_errors.push(m.text()); });
    page.on("pageerror", (e) => out.page_errors.push(String(e && e.stack ? e.stack : e)));
    page.on("response", (r) => { if (r.status() >= 400) out.failed.push(`${r.status()} ${r.url()}`); });
    try {
      await scenario(page, input, out);
    } catch (err) {
      out.page_errors.push("driver: " + String(err && err.stack ? err.stack : err));
      try { await page.screenshot({ path: path.join(input.shots, "failure.png"), fullPage: true }); } catch { /* ignore */ }
    }
    out.cookies = await context.cookies();
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out) + "\n");
})().catch((err) => { process.stderr.write(String(err && err.stack ? err.stack : err) + "\n"); process.exit(1); });
