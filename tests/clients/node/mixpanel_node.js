// Drives the unmodified npm `mixpanel-node` 0.0.17 (a TypeScript wrapper of the ingestion API over axios)
// against MP_BASE. The one redirect: the package exports its axios instance as `mixpanelAxios`, whose
// `defaults.baseURL` it sets to https://api.mixpanel.com; the driver sets it to MP_BASE.
// Prints one JSON object: what each call resolved to.
"use strict";
const { mixpanelAxios, mixpanelIngestion } = require("mixpanel-node");

mixpanelAxios.defaults.baseURL = process.env.MP_BASE.replace(/\/$/, "");
const TOKEN = process.env.MP_TOKEN;
const now = Math.floor(Date.now() / 1000);
const { event, profile } = mixpanelIngestion;

const calls = {
  track: () => event.trackEvents([
    { event: "Node Tracked", properties: { token: TOKEN, distinct_id: "n1", time: now - 60, $insert_id: "nt-1", n: 1 } },
    { event: "Node Tracked", properties: { token: TOKEN, distinct_id: "n2", time: now - 60, $insert_id: "nt-2", n: 2 } },
  ], 1),
  import: () => event.importEvents({
    projectId: Number(process.env.MP_PROJECT_ID),
    events: [{ event: "Node Imported", properties: { distinct_id: "n1", time: 1704067200, $insert_id: "ni-1" } }],
    auth: { username: process.env.MP_SA_USER, password: process.env.MP_SA_SECRET },
    strict: 1,
  }),
  importBadTime: () => event.importEvents({
    events: [{ event: "Node Imported", properties: { distinct_id: "n1", time: "yesterday", $insert_id: "ni-2" } }],
    auth: { username: process.env.MP_SECRET, password: "" },
    strict: 1,
  }).catch((e) => ({ status: e.response.status, body: e.response.data })),
  set: () => profile.setProperty([{ $token: TOKEN, $distinct_id: "n1", $set: { plan: "pro", seats: 1 } }], 1),
  add: () => profile.numericalAdd([{ $token: TOKEN, $distinct_id: "n1", $add: { seats: 2 } }], 1),
  append: () => profile.listAppend([{ $token: TOKEN, $distinct_id: "n1", $append: { $transactions: { $amount: 30, $time: "2024-01-02T10:00:00" } } }], 1),
  union: () => profile.union([{ $token: TOKEN, $distinct_id: "n1", $union: { tags: ["a", "b"] } }], 1),
  unset: () => profile.unset([{ $token: TOKEN, $distinct_id: "n1", $unset: ["plan"] }], 1),
  setN2: () => profile.setProperty([{ $token: TOKEN, $distinct_id: "n2", $set: { plan: "free" } }], 1),
  deleteN2: () => profile.profileDelete([{ $token: TOKEN, $distinct_id: "n2", $delete: "" }], 1),
};

(async () => {
  const out = {};
  for (const [name, call] of Object.entries(calls)) {
    try {
      out[name] = await call();
    } catch (e) {
      out[name] = { driver_error: String(e && e.message ? e.message : e) };
    }
  }
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
