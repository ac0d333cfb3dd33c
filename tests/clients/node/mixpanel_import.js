// Drives the unmodified npm `mixpanel-import` 3.1.43 programmatically against MP_BASE (real-clients §10).
// No option moves it, so this harness patches the `Job.prototype.url` getter to rewrite
// https://(*.)mixpanel.com to MP_BASE, and uses `transport: "got"` (the default undici transport sends to a
// connection pool fixed to api.mixpanel.com). MP_OUT: a folder for the export files.
// Prints one JSON object: the summaries the importer returned and the records the exports wrote.
"use strict";
const fs = require("fs");
const path = require("path");

const BASE = process.env.MP_BASE.replace(/\/$/, "");
const OUT = process.env.MP_OUT;
const Job = require("mixpanel-import/components/job.js"); // no "exports" map: a deep require works
const origUrl = Object.getOwnPropertyDescriptor(Job.prototype, "url").get;
Object.defineProperty(Job.prototype, "url", {
  get() {
    return origUrl.call(this).replace(/^https:\/\/([a-z0-9-]+\.)?mixpanel\.com/, BASE);
  },
});
const mpImport = require("mixpanel-import");

const opts = { transport: "got", workers: 1, logs: false, verbose: false, showProgress: false, fixData: false };
const JAN_1 = 1704067200;

function summary(s) {
  const keep = ["recordType", "total", "success", "failed", "empty", "requests", "batches", "duplicates"];
  return Object.fromEntries(keep.filter((k) => k in s).map((k) => [k, s[k]]));
}

function jsonLines(folder) {
  // every record the export wrote, whatever the file names
  const rows = [];
  for (const name of fs.readdirSync(folder).sort()) {
    const text = fs.readFileSync(path.join(folder, name), "utf8");
    for (const line of text.split("\n")) if (line.trim()) rows.push(JSON.parse(line));
  }
  return rows;
}

(async () => {
  const out = {};
  const events = [
    { event: "Imported", properties: { distinct_id: "m1", time: JAN_1 + 60, $insert_id: "mi-1", plan: "pro" } },
    { event: "Imported", properties: { distinct_id: "m2", time: JAN_1 + 120, $insert_id: "mi-2", plan: "free" } },
  ];
  // default compress: true -> gzip request body
  out.events_secret = summary(await mpImport({ secret: "SECRET123", token: "TOKEN123" }, events, { ...opts, recordType: "event" }));
  out.events_service_account = summary(
    await mpImport(
      { acct: "sa.user", pass: "sa-secret", project: "4242" },
      [{ event: "SA Imported", properties: { distinct_id: "m3", time: JAN_1 + 180, $insert_id: "mi-3" } }],
      { ...opts, recordType: "event", compress: false },
    ),
  );
  // strict: a record without a time is refused by the server and counted as failed
  out.events_bad = summary(
    await mpImport({ secret: "SECRET123", token: "TOKEN123" }, [{ event: "No Time", properties: { distinct_id: "m9" } }], {
      ...opts,
      recordType: "event",
    }),
  );
  out.users = summary(
    await mpImport(
      { secret: "SECRET123", token: "TOKEN123" },
      [
        { $distinct_id: "m1", $token: "TOKEN123", $set: { plan: "pro", $email: "m1@example.com" } },
        { $distinct_id: "m2", $token: "TOKEN123", $set: { plan: "free" } },
      ],
      { ...opts, recordType: "user" },
    ),
  );
  out.groups = summary(
    await mpImport(
      { secret: "SECRET123", token: "TOKEN123", groupKey: "company" },
      [{ $group_key: "company", $group_id: "acme", $token: "TOKEN123", $set: { size: 10 } }],
      { ...opts, recordType: "group" },
    ),
  );
  const eventsDir = path.join(OUT, "events");
  const profilesDir = path.join(OUT, "profiles");
  fs.mkdirSync(eventsDir, { recursive: true });
  fs.mkdirSync(profilesDir, { recursive: true });
  out.export = summary(
    await mpImport({ secret: "SECRET123" }, null, { ...opts, recordType: "export", start: "2024-01-01", end: "2024-01-02", where: eventsDir }),
  );
  out.exported = jsonLines(eventsDir);
  out.profile_export = summary(await mpImport({ secret: "SECRET123" }, null, { ...opts, recordType: "profile-export", where: profilesDir }));
  out.profiles_exported = jsonLines(profilesDir);
  console.log(JSON.stringify(out));
  process.exit(0);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
