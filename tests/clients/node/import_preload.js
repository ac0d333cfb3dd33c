// `node --require ./import_preload.js node_modules/mixpanel-import/index.js …`: the unmodified mixpanel-import
// CLI pointed at MP_BASE (real-clients §10). The CLI has no --transport flag, so this also forces "got": the
// constructor's plain `this.transport = …` assignment lands on a prototype setter that ignores it.
"use strict";
const BASE = process.env.MP_BASE.replace(/\/$/, "");
const Job = require("mixpanel-import/components/job.js");
const origUrl = Object.getOwnPropertyDescriptor(Job.prototype, "url").get;
Object.defineProperty(Job.prototype, "url", {
  get() {
    return origUrl.call(this).replace(/^https:\/\/([a-z0-9-]+\.)?mixpanel\.com/, BASE);
  },
});
Object.defineProperty(Job.prototype, "transport", { get: () => "got", set() {}, configurable: true });
