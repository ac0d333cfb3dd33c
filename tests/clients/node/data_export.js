// Drives the unmodified npm `mixpanel-data-export` 2.0.2 in Node (GET + Basic secret) against MP_BASE
// (real-clients §11). The one redirect: `_buildAPIStub` is wrapped to replace https://(*.)mixpanel.com with
// MP_BASE. MP_FUNNEL_ID: the saved funnel to query. Prints one JSON object: what each call resolved to.
"use strict";
const MixpanelExport = require("mixpanel-data-export");

const BASE = process.env.MP_BASE.replace(/\/$/, "");
const orig = MixpanelExport.prototype._buildAPIStub;
MixpanelExport.prototype._buildAPIStub = function (method) {
  return orig.call(this, method).replace(/^https:\/\/([a-z0-9-]+\.)?mixpanel\.com/, BASE);
};

const panel = new MixpanelExport({ api_key: "APIKEY", api_secret: "SECRET123" });
const dates = { from_date: "2024-01-01", to_date: "2024-01-02" };
const funnel_id = Number(process.env.MP_FUNNEL_ID);

const calls = {
  events: () => panel.events({ event: ["Signed Up", "Purchase"], type: "general", unit: "day", ...dates }),
  topEvents: () => panel.topEvents({ type: "general" }),
  eventNames: () => panel.eventNames({ type: "general", limit: 10 }),
  eventProperties: () => panel.eventProperties({ event: "Signed Up", name: "plan", type: "general", unit: "day", ...dates }),
  topEventProperties: () => panel.topEventProperties({ event: "Signed Up" }),
  eventPropertyValues: () => panel.eventPropertyValues({ event: "Signed Up", name: "plan" }),
  segmentation: () => panel.segmentation({ ...dates, event: "Signed Up", on: 'properties["plan"]', where: 'properties["plan"] != "x"' }),
  numericSegmentation: () => panel.numericSegmentation({ ...dates, event: "Purchase", on: 'properties["amount"]', buckets: 2 }),
  sumSegmentation: () => panel.sumSegmentation({ ...dates, event: "Purchase", on: 'properties["amount"]' }),
  averageSegmentation: () => panel.averageSegmentation({ ...dates, event: "Purchase", on: 'properties["amount"]' }),
  funnels: () => panel.funnels({ ...dates, funnel_id }),
  listFunnels: () => panel.listFunnels(),
  retention: () => panel.retention({ ...dates, born_event: "Signed Up", event: "Purchase" }),
  addiction: () => panel.addiction({ ...dates, event: "Signed Up", unit: "day", addiction_unit: "hour" }),
  engage: () => panel.engage({ where: 'properties["plan"] == "pro"' }),
  export: () => panel.export({ ...dates, event: ["Signed Up"] }),
  // Run in order: update and delete use the id the create answered with.
  createAnnotation: () => panel.createAnnotation({ date: "2024-01-02 10:00:00", description: "Price change" }),
  updateAnnotation: () => panel.updateAnnotation({ id: out.createAnnotation.annotation.id, date: "2024-01-01 08:00:00" }),
  annotations: () => panel.annotations(dates),
  deleteAnnotation: () => panel.deleteAnnotation({ id: out.createAnnotation.annotation.id }),
  annotationsAfterDelete: () => panel.annotations(dates),
};

const out = {};
(async () => {
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
