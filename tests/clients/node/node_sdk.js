// Drives the unmodified npm `mixpanel` 0.24.0 SDK against mixhouse (real-clients §8), redirected with its own
// `host` / `protocol` options. MP_HTTP_HOST: a plain-http server (token calls, the legacy `key`);
// MP_TLS_HOST: the same SDK over https (secret and service account refuse plain http), trusted through
// NODE_EXTRA_CA_CERTS. Prints one JSON object: per call, "ok" or the error the SDK reported.
"use strict";
const Mixpanel = require("mixpanel");

const HTTP = process.env.MP_HTTP_HOST;
const TLS = process.env.MP_TLS_HOST;
const JAN_1 = new Date(Date.UTC(2024, 0, 1)); // Date -> the SDK sends milliseconds
const RECENT = new Date(Number(process.env.MP_RECENT_S) * 1000); // /track takes only the last 5 days
const quiet = { logger: { trace() {}, debug() {}, info() {}, warn() {}, error: console.error } };

const out = {};
function call(name, fn) {
  return new Promise((resolve) => {
    fn((err) => {
      const errs = Array.isArray(err) ? err.filter(Boolean) : err ? [err] : [];
      out[name] = errs.length ? "ERR " + errs.map((e) => e.message || String(e)).join("; ") : "ok";
      resolve();
    });
  });
}

(async () => {
  const mp = Mixpanel.init("TOKEN123", { host: HTTP, protocol: "http", ...quiet });
  // GET /track?ip=0&verbose=0&data=<base64>: the body must be exactly "1"
  await call("track", (cb) => mp.track("Signed Up", { distinct_id: "n1", plan: "pro", $insert_id: "n-track" }, cb));
  await call("people.set", (cb) => mp.people.set("n1", { $email: "n1@example.com", plan: "pro" }, cb));
  await call("people.increment", (cb) => mp.people.increment("n1", "logins", 2, cb));
  await call("people.track_charge", (cb) => mp.people.track_charge("n1", 9.99, { sku: "x" }, cb));
  await call("groups.set", (cb) => mp.groups.set("company", "acme", { size: 10 }, cb));
  // POST /track form data=<base64 array>, times as Date -> ms
  await call("track_batch", (cb) =>
    mp.track_batch(
      [
        { event: "Batch A", properties: { distinct_id: "n2", time: RECENT, $insert_id: "n-batch-a" } },
        { event: "Batch B", properties: { distinct_id: "n2", time: new Date(RECENT.getTime() + 1000), $insert_id: "n-batch-b" } },
      ],
      cb,
    ),
  );
  // verbose: the reply must be JSON with status 1
  const verbose = Mixpanel.init("TOKEN123", { host: HTTP, protocol: "http", verbose: true, ...quiet });
  await call("track.verbose", (cb) => verbose.track("Verbose", { distinct_id: "n1", $insert_id: "n-verbose" }, cb));
  // legacy `key`: ?api_key= is the only credential the SDK sends over plain http
  const keyed = Mixpanel.init("TOKEN123", { host: HTTP, protocol: "http", key: "APIKEY", ...quiet });
  await call("import.key", (cb) => keyed.import("Old Event", JAN_1, { distinct_id: "n1", $insert_id: "n-old" }, cb));
  await call("import_batch.key", (cb) =>
    keyed.import_batch([{ event: "Old Batch", properties: { distinct_id: "n3", time: JAN_1, $insert_id: "n-old-batch" } }], cb),
  );
  // a wrong key is refused, and the SDK says so
  const wrong = Mixpanel.init("TOKEN123", { host: HTTP, protocol: "http", key: "WRONG", ...quiet });
  await call("import.wrong_key", (cb) => wrong.import("Refused", JAN_1, { distinct_id: "n1" }, cb));

  // https: the project secret, and a service account
  const secret = Mixpanel.init("TOKEN123", { host: TLS, secret: "SECRET123", ...quiet });
  await call("import.secret", (cb) => secret.import("Secret Import", JAN_1, { distinct_id: "n4", $insert_id: "n-secret" }, cb));
  const credentials = new Mixpanel.ServiceAccountCredentials("sa.user", "sa-secret", "4242");
  const sa = Mixpanel.init("TOKEN123", { host: TLS, credentials, ...quiet });
  await call("import_batch.service_account", (cb) =>
    sa.import_batch(
      [
        { event: "SA Batch", properties: { distinct_id: "n5", time: JAN_1, $insert_id: "n-sa-1" } },
        { event: "SA Batch", properties: { distinct_id: "n6", time: JAN_1, $insert_id: "n-sa-2" } },
      ],
      cb,
    ),
  );
  await call("track.tls", (cb) => secret.track("Over TLS", { distinct_id: "n4", $insert_id: "n-tls" }, cb));
  console.log(JSON.stringify(out));
  process.exit(0); // keep-alive agents would hold the event loop open
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
