// Drives the unmodified npm `mixpanel-jql` 0.0.3 in Node against MP_BASE. The client bundles each script with
// browserify and POSTs the bundle and `params` as a form,
// with the project secret. Its endpoint is a constant inside the module: the one redirect wraps
// `superagent.post` (the copy the client itself resolves) to replace https://mixpanel.com with MP_BASE.
// Prints one JSON object: what each query resolved to (or the client's error).
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");

const BASE = process.env.MP_BASE.replace(/\/$/, "");
const clientDir = path.dirname(require.resolve("mixpanel-jql"));
const superagent = require(require.resolve("superagent", { paths: [clientDir] }));
const post = superagent.post;
superagent.post = function (url, ...rest) {
  return post.call(this, url.replace(/^https:\/\/([a-z0-9-]+\.)?mixpanel\.com/, BASE), ...rest);
};
const Client = require("mixpanel-jql");

const client = new Client("SECRET123");
const dates = { from_date: "2024-01-01", to_date: "2024-01-02" };

// A script file (the client reads and bundles it; relative require()s resolve inside the client's own
// folder, so the helper lives in the same file).
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "jql-"));
fs.writeFileSync(
  path.join(dir, "signups.js"),
  "function plan(e) { return e.properties.plan || 'none'; }\n" +
    "function main() {\n" +
    "  return Events({from_date: params.from_date, to_date: params.to_date, event_selectors: [{event: 'Signed Up'}]})\n" +
    "    .groupBy([plan], mixpanel.reducer.count());\n" +
    "}\n"
);

const queries = {
  byName: () =>
    client.query()
      .codes("function main() { return Events(params).groupBy(['name'], mixpanel.reducer.count()); }")
      .params(dates)
      .send(),
  usersPerDay: () =>
    client.query()
      .codes(
        "function main() { return Events(params)" +
          ".groupByUser([function (e) { return new Date(e.time).toISOString().slice(0, 10); }], mixpanel.reducer.null())" +
          ".groupBy([mixpanel.slice('key', 1)], mixpanel.reducer.count()); }"
      )
      .params(dates)
      .send(),
  signupsByPlanFromFile: () => client.query().file(path.join(dir, "signups.js")).params(dates).send(),
  scriptError: () => client.query().codes("function main() { throw new Error('no luck'); }").send(),
};

const out = {};
(async () => {
  for (const [name, query] of Object.entries(queries)) {
    try {
      out[name] = await query();
    } catch (e) {
      out[name] = { driver_error: String(e && e.message ? e.message : e), status: e && e.status };
    }
  }
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
