// Drives the unmodified npm `mixpanel-data-export-node` 2.1.0 against MP_BASE. Constructed with `api_key`,
// it signs every request the legacy v2 way (api_key + expire + sig, no Authorization header); without it,
// it sends Basic secret. The one redirect: `_buildRequestURL` is wrapped to replace https://(*.)mixpanel.com
// with MP_BASE. MP_FUNNEL_ID: the saved funnel. Prints one JSON object: what each call resolved to.
"use strict";
const zlib = require("zlib");
const MixpanelExport = require("mixpanel-data-export-node");

const BASE = process.env.MP_BASE.replace(/\/$/, "");
const orig = MixpanelExport.prototype._buildRequestURL;
MixpanelExport.prototype._buildRequestURL = function (method, parameters) {
  return orig.call(this, method, parameters).replace(/^https:\/\/([a-z0-9-]+\.)?mixpanel\.com/, BASE);
};

const signed = new MixpanelExport({ api_key: process.env.MP_API_KEY, api_secret: process.env.MP_SECRET });
const basic = new MixpanelExport({ api_secret: process.env.MP_SECRET });
const wrong = new MixpanelExport({ api_key: process.env.MP_API_KEY, api_secret: "not-the-secret" });
const dates = { from_date: "2024-01-01", to_date: "2024-01-02" };
const funnel_id = Number(process.env.MP_FUNNEL_ID);

// exportStream asks for gzip (`compressed: true`): the raw bytes say whether the server sent gzip.
function rawExport(client, params) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    const stream = client.exportStream(params);
    stream.on("header", (status, headers) => { stream._status = status; stream._encoding = headers["content-encoding"] || null; });
    stream.on("data", (c) => chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(JSON.stringify(c) + "\n")));
    stream.on("done", (err) => (err ? reject(err) : resolve({ status: stream._status, encoding: stream._encoding, text: Buffer.concat(chunks).toString() })));
  });
}

const calls = {
  export: () => signed.export({ ...dates, event: ["Signed Up"] }),
  exportStream: () => rawExport(signed, { ...dates, event: ["Purchase"] }),
  segmentation: () => signed.segmentation({ ...dates, event: "Signed Up", on: 'properties["plan"]' }),
  listFunnels: () => signed.listFunnels(),
  funnels: () => signed.funnels({ ...dates, funnel_id, length: 1, length_unit: "week" }),
  retention: () => signed.retention({ ...dates, born_event: "Signed Up", event: "Purchase" }),
  engage: () => signed.engage({ where: 'properties["plan"] == "pro"' }),
  basicExport: () => basic.export({ ...dates, event: ["Purchase"] }),
  wrongSecret: () => wrong.listFunnels(),
  // Run in order: the update and the listings use the id the create answered with.
  createAnnotation: () => signed.createAnnotation({ date: "2024-01-01 09:00:00", description: "Launch" }),
  createOutside: () => basic.createAnnotation({ date: "2023-12-30 09:00:00", description: "Before the window" }),
  updateAnnotation: () => signed.updateAnnotation({ id: out.createAnnotation.annotation.id, description: "Launch day" }),
  annotations: () => signed.annotations(dates),
  basicAnnotations: () => basic.annotations({ from_date: "2023-12-30", to_date: "2023-12-30" }),
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
