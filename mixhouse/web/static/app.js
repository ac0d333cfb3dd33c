// mixhouse's web app: a client of the server's own Query and App APIs, authenticated by the session cookie
// plus the session's CSRF token in a header (docs/web.md). No build step; uPlot is a classic script
// (window.uPlot) fetched beside this module: charts wait for it (`chartLibrary`), the rest does not. Every
// view is a hash route, so a report's URL reopens it.

const state = { session: null, project: null };
const PALETTE = ["#4f46e5", "#0ea5e9", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#14b8a6", "#f97316"];

// -- DOM -----------------------------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}
const $ = (sel, root = document) => root.querySelector(sel);
const main = () => $("#main");
function show(...nodes) { main().replaceChildren(...nodes); }
function field(label, control) { return h("label", {}, label, control); }
function select(name, options, value) {
  return h("select", { name }, options.map(([v, t]) => h("option", { value: v, selected: v === value }, t ?? v)));
}
function errorBox(err) { return h("p", { class: "error", role: "alert" }, String(err.message || err)); }

// -- API -----------------------------------------------------------------------------------------------

class ApiError extends Error { constructor(status, message) { super(message); this.status = status; } }

async function call(path, { params = {}, method = "GET", body } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  const headers = {};
  if (state.session) headers["X-CSRF-Token"] = state.session.csrf_token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  const text = await r.text();
  let data = text;
  try { data = JSON.parse(text); } catch { /* not JSON */ }
  if (r.status === 401 && state.session) { state.session = null; renderLogin("Your session has ended: log in again."); }
  if (!r.ok) throw new ApiError(r.status, (data && data.error) || text || r.statusText);
  return data;
}
const query = (name, params = {}) => call(`/api/query/${name}`, { params: { project_id: state.project.id, ...params } });
const app = (path, opts = {}) => call(`/api/app/projects/${state.project.id}${path}`, opts);

// -- dates ---------------------------------------------------------------------------------------------

function today() {
  return new Intl.DateTimeFormat("en-CA", { timeZone: state.project.timezone || "UTC" }).format(new Date());
}
function addDays(day, n) {
  const d = new Date(day + "T00:00:00Z"); d.setUTCDate(d.getUTCDate() + n); return d.toISOString().slice(0, 10);
}
function daysBetween(a, b) { return Math.round((Date.parse(b + "T00:00:00Z") - Date.parse(a + "T00:00:00Z")) / 86400000); }
// A bucket key ("2024-01-10", "2024-01-10 05:00:00" or "2024-01-10T00:00:00-07:00") as its local wall clock.
function keyLabel(key) { return key.length <= 10 ? key : key.slice(0, 16).replace("T", " "); }
function keyTime(key) { return Date.parse(keyLabel(key).replace(" ", "T") + (key.length <= 10 ? "T00:00:00Z" : ":00Z")) / 1000; }
function fmt(n) { return typeof n === "number" ? (Number.isInteger(n) ? n.toLocaleString("en-US") : n.toFixed(2)) : String(n ?? ""); }
function pct(r) { return (r * 100).toFixed(1) + "%"; }
function duration(s) {
  if (s === null || s === undefined) return "–";
  if (Math.abs(s) < 120) return `${s}s`;
  if (Math.abs(s) < 7200) return `${Math.round(s / 60)}m`;
  if (Math.abs(s) < 172800) return `${(s / 3600).toFixed(1)}h`;
  return `${(s / 86400).toFixed(1)}d`;
}

// -- routing -------------------------------------------------------------------------------------------

function route() {
  const raw = location.hash.slice(1) || "/insights";
  const [path, qs] = raw.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(qs || "") };
}
function go(path, params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) for (const x of [].concat(v)) if (x !== undefined && x !== null && x !== "") qs.append(k, x);
  const text = qs.toString();
  location.hash = path + (text ? "?" + text : "");
}

const VIEWS = { insights: viewInsights, funnels: viewFunnels, retention: viewRetention, users: viewUsers, lexicon: viewLexicon, dashboards: viewDashboards };

async function render() {
  if (!state.session) return;
  const { parts, params } = route();
  const view = VIEWS[parts[0]] || viewInsights;
  for (const a of document.querySelectorAll("nav a")) {
    a.toggleAttribute("aria-current", a.getAttribute("href") === `#/${parts[0] || "insights"}`);
    if (a.hasAttribute("aria-current")) a.setAttribute("aria-current", "page");
  }
  document.body.dataset.view = parts[0] || "insights";
  document.body.dataset.ready = "0";
  try {
    await view(parts.slice(1), params);
  } catch (err) {
    show(errorBox(err));
  }
  document.body.dataset.ready = "1";
}

// -- session -------------------------------------------------------------------------------------------

function renderLogin(message) {
  $("#top").hidden = true;
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const out = h("div", { "aria-live": "polite" }, message ? h("p", { class: "muted" }, message) : null);
  const form = h("form", {
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        const r = await call("/web/login", { method: "POST", body: { email: email.value, password: password.value } });
        start(r.results);
      } catch (err) { out.replaceChildren(errorBox(err)); }
    },
  }, field("Email", email), field("Password", password), h("button", { type: "submit" }, "Log in"), out);
  show(h("section", { class: "card login" }, h("h1", {}, "Log in to mixhouse"), form));
  document.body.dataset.view = "login";
  document.body.dataset.ready = "1";
  email.focus();
}

function start(session) {
  state.session = session;
  const saved = Number(localStorage.getItem("mixhouse.project"));
  state.project = session.projects.find((p) => p.id === saved) || session.projects[0] || null;
  if (!state.project) { show(h("p", { class: "error" }, "This user has no project.")); return; }
  $("#top").hidden = false;
  $("#email").textContent = session.email;
  const sel = $("#project");
  sel.replaceChildren(...session.projects.map((p) => h("option", { value: p.id, selected: p.id === state.project.id }, `${p.name} (${p.id})`)));
  sel.onchange = () => {
    state.project = session.projects.find((p) => p.id === Number(sel.value));
    localStorage.setItem("mixhouse.project", String(state.project.id));
    go("/insights");
    render();
  };
  render();
}

async function boot() {
  $("#logout").addEventListener("click", async () => {
    try { await call("/web/logout", { method: "POST" }); } finally { state.session = null; renderLogin("Logged out."); }
  });
  window.addEventListener("hashchange", render);
  try {
    const r = await call("/web/session");
    start(r.results);
  } catch { renderLogin(); }
}

// -- charts --------------------------------------------------------------------------------------------

// series: [{name, points: {key: value}}]; draws a uPlot line chart or stacked bar chart and, below, the
// numbers as a table (the numbers the API answered, unstacked). With `notes` ({from, to}: the report's
// days), the project's annotations of those days are shown on the chart once drawn (docs/web.md).
function timeChart(series, { kind = "line", title, notes } = {}) {
  const keys = [...new Set(series.flatMap((s) => Object.keys(s.points)))].sort((a, b) => keyTime(a) - keyTime(b));
  const box = h("div", { class: "chart", role: "img", "aria-label": title || "chart" });
  const marks = h("div", { class: "note-marks" });
  const notesBox = h("div", { class: "notes" });
  const wrap = h("div", {}, h("div", { class: "chart-wrap" }, box, marks), legend(series), notesBox, numbersTable(series, keys));
  if (!keys.length) return wrap;
  const xs = keys.map(keyTime);
  let ys = series.map((s) => keys.map((k) => s.points[k] ?? 0));
  let colors = series.map((_, i) => PALETTE[i % PALETTE.length]);
  if (kind === "bar") {
    // Stacked: each series drawn as the running total up to it, the tallest first so that all show.
    const totals = ys.map((_, i) => keys.map((_, j) => ys.slice(0, i + 1).reduce((a, y) => a + y[j], 0)));
    ys = totals.reverse();
    colors = colors.slice().reverse();
  }
  const hourly = keys.some((k) => k.length > 10 && k.slice(11, 16) !== "00:00");
  const label = (t) => { const iso = new Date(t * 1000).toISOString(); return hourly ? iso.slice(5, 13).replace("T", " ") + "h" : iso.slice(0, 10); };
  const step = xs.length > 1 ? xs[1] - xs[0] : 86400;
  // Annotations grouped by the bucket they fall in (the last bucket starting at or before them).
  let groups = new Map();
  const drawNotes = (u) => {
    const ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = NOTE_COLOR; ctx.lineWidth = Math.max(1, devicePixelRatio); ctx.setLineDash([5 * devicePixelRatio, 4 * devicePixelRatio]);
    for (const i of groups.keys()) {
      const x = Math.round(u.valToPos(xs[i], "x", true));
      ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
    }
    ctx.restore();
    const left = u.over.getBoundingClientRect().left - marks.getBoundingClientRect().left;
    const top = u.over.getBoundingClientRect().top - marks.getBoundingClientRect().top;
    const width = marks.clientWidth || 1;
    for (const m of marks.children) {
      const x = left + u.valToPos(xs[Number(m.dataset.index)], "x");
      m.style.cssText = `left:${x}px;top:${top}px`;
      m.dataset.side = x < width * 0.3 ? "start" : x > width * 0.7 ? "end" : ""; // where its tooltip opens
    }
  };
  const options = () => ({
    height: 300, legend: { show: false }, cursor: { points: { size: 6 } }, padding: [16, 36, 0, 0],
    scales: { x: { time: false, range: () => [xs[0] - (kind === "bar" ? step / 2 : 0), xs[xs.length - 1] + (kind === "bar" ? step / 2 : 0)] } },
    axes: [{ splits: (u) => { const every = Math.ceil(xs.length / Math.max(2, Math.floor(u.width / 95))); return xs.filter((_, i) => i % every === 0); },
      values: (u, splits) => splits.map(label), size: 40 }, { size: 60 }],
    series: [{}, ...colors.map((c) => ({
      stroke: c, width: 2, fill: kind === "bar" ? c + "dd" : undefined,
      paths: kind === "bar" ? window.uPlot.paths.bars({ size: [0.7, 48] }) : undefined, points: { show: kind !== "bar" && xs.length < 60 },
    }))],
    hooks: { draw: [drawNotes] },
  });
  // Drawn once the chart library is there and the box is in the page and has a width; resized with it.
  chartLibrary().then(() => requestAnimationFrame(() => {
    const plot = new window.uPlot({ ...options(), width: Math.max(280, box.clientWidth) }, [xs, ...ys], box);
    performance.mark("mixhouse:chart-drawn"); // bench/bench_web.py reads it
    new ResizeObserver(() => plot.setSize({ width: Math.max(280, box.clientWidth), height: 300 })).observe(box);
    if (!notes) return;
    const bucketOf = (date) => {
      const t = keyTime(date.slice(0, 16));
      let i = 0;
      while (i + 1 < xs.length && xs[i + 1] <= t) i++;
      return i;
    };
    const place = (list) => {
      groups = new Map();
      for (const a of list) groups.set(bucketOf(a.date), [...(groups.get(bucketOf(a.date)) || []), a]);
      marks.replaceChildren(...[...groups].map(([i, group]) => {
        const tip = h("span", { class: "note-tip", id: `note-tip-${++noteTips}`, role: "tooltip" },
          group.map((a) => h("span", {}, h("strong", {}, a.date.slice(0, 10)), " ", a.description)));
        return h("span", { class: "note", "data-index": i },
          h("button", { type: "button", class: "note-mark", "aria-describedby": tip.id,
            "aria-label": `Annotation${group.length > 1 ? "s" : ""} on ${keyLabel(keys[i])}: ${group.map((a) => a.description).join("; ")}` }, String(group.length)),
          tip);
      }));
      notesBox.replaceChildren(list.length ? h("ul", { class: "note-list", "aria-label": "annotations" }, list.map((a) => h("li", { "data-annotation": a.id, "data-date": a.date },
        h("span", { class: "note-dot", "aria-hidden": "true" }), h("time", { datetime: a.date.replace(" ", "T") }, a.date.slice(11) === "00:00:00" ? a.date.slice(0, 10) : a.date.slice(0, 16)), " ",
        a.description, a.user ? h("span", { class: "muted" }, ` · ${a.user.first_name}`) : null))) : "",
      ...(mayWrite() ? [annotateForm(keys, plot, async () => place(await annotationsIn(notes.from, notes.to)))] : []));
      plot.redraw(false, false);
      notesBox.dataset.loaded = "1";
    };
    annotationsIn(notes.from, notes.to).then(place);
  }));
  return wrap;
}

// uPlot, loaded by its own async script tag (index.html).
let uPlotLoaded = null;
function chartLibrary() {
  uPlotLoaded ||= window.uPlot ? Promise.resolve() : new Promise((resolve) => {
    const tag = document.getElementById("uplot");
    tag.addEventListener("load", resolve);
    if (window.uPlot) resolve();
  });
  return uPlotLoaded;
}

// -- annotations ---------------------------------------------------------------------------------------

const NOTE_COLOR = "#b45309";
let noteTips = 0; // tooltip ids, unique in the page (a dashboard shows the same annotation on several charts)
// Mixpanel: "To modify annotations ... at least Analyst"; the API refuses the others anyway.
function mayWrite() { return ["analyst", "admin", "owner"].includes(state.project.role); }
// A saved report's days: the ones /insights answered for (its `last` days end today).
function notesRange(q, answer) {
  const r = answer.date_range || {};
  return { from: (r.from_date || q.from_date || "").slice(0, 10), to: (r.to_date || q.to_date || "").slice(0, 10) };
}
async function annotationsIn(from, to) {
  try { return (await app("/annotations", { params: { fromDate: from, toDate: to } })).results; } catch { return []; }
}
// A date and a description; clicking a point of the chart picks its day.
function annotateForm(keys, plot, done) {
  const last = keyLabel(keys[keys.length - 1]).slice(0, 10);
  const date = h("input", { type: "date", name: "annotation-date", value: last, "aria-label": "annotation date" });
  const text = h("input", { name: "annotation-description", maxlength: 512, required: true, placeholder: "what happened", "aria-label": "annotation description", style: "flex:1 1 220px" });
  const out = h("span", { "aria-live": "polite" });
  plot.over.onclick = () => { // one handler: the form is made again after each annotation added
    if (plot.cursor.idx === null || plot.cursor.idx === undefined) return;
    date.value = keyLabel(keys[plot.cursor.idx]).slice(0, 10);
    text.focus();
  };
  plot.over.title = "Click a day to annotate it";
  return h("form", { class: "row annotate", onsubmit: async (e) => {
    e.preventDefault();
    try {
      await app("/annotations", { method: "POST", body: { date: date.value, description: text.value } });
      text.value = "";
      await done();
    } catch (err) { out.replaceChildren(errorBox(err)); }
  } }, h("span", { class: "muted" }, "Annotate"), date, text, h("button", { type: "submit", class: "quiet" }, "Add annotation"), out);
}
function legend(series) {
  return h("div", { class: "legend" }, series.map((s, i) => h("span", {}, h("span", { class: "swatch", style: `background:${PALETTE[i % PALETTE.length]}` }), s.name)));
}
function numbersTable(series, keys) {
  const midnight = keys.every((k) => k.length <= 10 || k.slice(11, 16) === "00:00");
  return h("div", { class: "scroll" }, h("table", { class: "numbers" },
    h("thead", {}, h("tr", {}, h("th", {}, "series"), keys.map((k) => h("th", {}, midnight ? k.slice(0, 10) : keyLabel(k))))),
    h("tbody", {}, series.map((s) => h("tr", { "data-series": s.name }, h("th", { scope: "row" }, s.name),
      keys.map((k) => h("td", { "data-key": k, "data-value": s.points[k] ?? 0 }, fmt(s.points[k] ?? 0))))))));
}

// -- where builder ------------------------------------------------------------------------------------

const OPS = [["==", "equals"], ["!=", "is not"], [">", ">"], ["<", "<"], ["contains", "contains"], ["defined", "is set"]];
function literal(v) { return v.trim() !== "" && !isNaN(Number(v)) ? String(Number(v)) : JSON.stringify(v); }
// Rows of property / operator / value, joined by "and", written as the expression language (docs/expressions.md).
function whereBuilder(initial, properties, scope = "properties") {
  const text = h("textarea", { name: "where", rows: 2, "aria-label": "where expression", placeholder: 'properties["plan"] == "pro"' }, initial || "");
  const rows = h("div", {});
  const rowsData = [];
  const write = () => {
    const parts = rowsData.map(({ prop, op, value }) => {
      if (!prop.value) return null;
      const ref = `${scope}[${JSON.stringify(prop.value)}]`;
      if (op.value === "defined") return `defined(${ref})`;
      if (op.value === "contains") return `${literal(value.value)} in ${ref}`;
      return `${ref} ${op.value} ${literal(value.value)}`;
    }).filter(Boolean);
    text.value = parts.join(" and ");
  };
  const add = (initialRow) => {
    const prop = h("input", { list: "props-list", name: "filter-property", "aria-label": "filter property", placeholder: "property", oninput: write, value: initialRow ? initialRow.prop : null });
    const op = select("filter-op", OPS, initialRow ? initialRow.op : "==");
    op.setAttribute("aria-label", "filter operator");
    op.addEventListener("change", write);
    const value = h("input", { name: "filter-value", "aria-label": "filter value", placeholder: "value", oninput: write, value: initialRow ? initialRow.value : null });
    const r = { prop, op, value };
    rowsData.push(r);
    const line = h("div", { class: "row" }, prop, op, value, h("button", { type: "button", class: "quiet", "aria-label": "remove filter", onclick: () => { rowsData.splice(rowsData.indexOf(r), 1); line.remove(); write(); } }, "×"));
    rows.append(line);
    if (!initialRow) prop.focus();
  };
  // An expression the builder wrote (a URL or a saved report) comes back as its rows; any other stays text.
  for (const r of builderRows(initial || "", scope) || []) add(r);
  const list = h("datalist", { id: "props-list" }, (properties || []).map((p) => h("option", { value: p })));
  return h("div", { class: "filters" }, list, h("div", { class: "row" }, h("span", { class: "muted" }, "Filter"),
    h("button", { type: "button", class: "quiet", onclick: () => add() }, "+ where")), rows, text);
}

// The rows of an expression in the builder's own form (conditions joined by "and"), or null.
function builderRows(expr, scope) {
  const str = String.raw`"(?:[^"\\]|\\.)*"`;
  const lit = String.raw`(${str}|-?\d+(?:\.\d+)?)`;
  const ref = String.raw`${scope}\[(${str})\]`;
  const forms = [
    [new RegExp(String.raw`^${ref} (==|!=|>|<) ${lit}`), (m) => ({ prop: JSON.parse(m[1]), op: m[2], value: m[3] })],
    [new RegExp(String.raw`^${lit} in ${ref}`), (m) => ({ prop: JSON.parse(m[2]), op: "contains", value: m[1] })],
    [new RegExp(String.raw`^defined\(${ref}\)`), (m) => ({ prop: JSON.parse(m[1]), op: "defined", value: "" })],
  ];
  const out = [];
  let rest = expr.trim();
  while (rest) {
    const hit = forms.map(([re, read]) => [rest.match(re), read]).find(([m]) => m);
    if (!hit) return null;
    const row = hit[1](hit[0]);
    if (row.value.startsWith('"')) row.value = JSON.parse(row.value);
    out.push(row);
    rest = rest.slice(hit[0][0].length);
    if (rest && !rest.startsWith(" and ")) return null;
    rest = rest.replace(/^ and /, "");
  }
  return out;
}

async function eventNames(from, to) {
  try { return await query("events/names", { type: "general", limit: 255, from_date: from, to_date: to }); } catch { return []; }
}
async function propertyNames(event, from, to) {
  try { return Object.keys(await query("events/properties/top", { event: event ? JSON.stringify([event]) : undefined, limit: 50, from_date: from, to_date: to })); } catch { return []; }
}
function eventSelect(name, names, value, label) {
  const opts = [...new Set([...(value ? [value] : []), ...names])].map((n) => [n, n]);
  const el = select(name, opts, value);
  el.setAttribute("aria-label", label || name);
  return el;
}

// -- dashboards helper ---------------------------------------------------------------------------------

async function addToDashboard(item) {
  const dashboards = (await app("/dashboards")).results;
  const sel = select("dashboard", [["", "New dashboard…"], ...dashboards.map((d) => [String(d.id), d.name])], "");
  sel.setAttribute("aria-label", "dashboard");
  const name = h("input", { name: "dashboard-name", placeholder: "dashboard name", "aria-label": "new dashboard name" });
  const out = h("span", { class: "muted", "aria-live": "polite" });
  const button = h("button", { type: "button", class: "quiet", onclick: async () => {
    try {
      let d;
      if (sel.value) {
        const current = dashboards.find((x) => String(x.id) === sel.value);
        d = (await app(`/dashboards/${sel.value}`, { method: "PATCH", body: { items: [...current.items, item] } })).results;
      } else {
        d = (await app("/dashboards", { method: "POST", body: { name: name.value || "My dashboard", items: [item] } })).results;
      }
      out.replaceChildren(h("a", { href: `#/dashboards/${d.id}` }, `Added to ${d.name}`));
    } catch (err) { out.replaceChildren(errorBox(err)); }
  } }, "Add to dashboard");
  return h("div", { class: "row" }, sel, name, button, out);
}

// -- Insights ------------------------------------------------------------------------------------------

function insightsSeries(answer, on) {
  // /segmentation: {data: {series, values: {name: {date: n}}}}
  return Object.entries(answer.data.values).map(([name, points]) => ({ name: on ? name : name, points }));
}
function bookmarkSeries(answer) {
  // /insights: {series: {event: {bucket: n}} or {event: {segment: {bucket: n}}}}
  const out = [];
  const several = Object.keys(answer.series).length > 1;
  for (const [event, v] of Object.entries(answer.series)) {
    const nested = Object.values(v).some((x) => typeof x === "object");
    if (!nested) out.push({ name: event, points: v });
    else for (const [segment, points] of Object.entries(v)) out.push({ name: several ? `${event} · ${segment}` : segment, points });
  }
  return out;
}

async function viewInsights(rest, params) {
  if (rest[0] === "bookmark" && rest[1]) return viewBookmark(rest[1], params);
  const to = params.get("to") || today();
  const from = params.get("from") || addDays(to, -29);
  const segmentation = (q) => query("segmentation", { event: q.event, type: q.type, unit: q.unit, from_date: q.from, to_date: q.to, on: q.on ? `properties[${JSON.stringify(q.on)}]` : undefined, where: q.where || undefined });
  // A report named in the URL is drawn first; the pickers' lists (scans of their own) are asked for after
  // it, so that they do not slow it down. Without one, the lists come first: they choose the event.
  const known = params.get("event");
  const names = known ? [known] : await eventNames(from, to);
  const event = known || names[0] || "";
  const props = known ? [params.get("on")].filter(Boolean) : await propertyNames(event, from, to);
  const f = {
    event: eventSelect("event", names, event, "event"),
    type: select("type", [["general", "Total"], ["unique", "Unique"], ["average", "Average per user"]], params.get("type") || "general"),
    unit: select("unit", [["hour", "Hour"], ["day", "Day"], ["week", "Week"], ["month", "Month"]], params.get("unit") || "day"),
    from: h("input", { type: "date", name: "from", value: from }),
    to: h("input", { type: "date", name: "to", value: to }),
    on: select("on", [["", "No breakdown"], ...props.map((p) => [p, p])], params.get("on") || ""),
    chart: select("chart", [["line", "Line"], ["bar", "Bar"]], params.get("chart") || "line"),
  };
  const where = whereBuilder(params.get("where"), props);
  const result = h("div", { id: "result" });
  const savedBox = h("div", {});
  // More events on the same chart, each asked for with the same measure, filter and breakdown.
  const alsoBox = h("span", { class: "row" });
  const alsoSelects = [];
  const addAlso = (value) => {
    const sel = eventSelect("also", value ? [value, ...names] : names, value || names[0], `event ${alsoSelects.length + 2}`);
    alsoSelects.push(sel);
    const wrap = h("span", { class: "row" }, sel, h("button", { type: "button", class: "quiet", "aria-label": "remove event", onclick: () => { alsoSelects.splice(alsoSelects.indexOf(sel), 1); wrap.remove(); } }, "×"));
    alsoBox.append(wrap);
    if (!value) sel.focus();
  };
  params.getAll("also").forEach(addAlso);
  const current = () => ({ event: f.event.value, also: alsoSelects.map((x) => x.value).filter(Boolean), type: f.type.value, unit: f.unit.value, from: f.from.value, to: f.to.value, on: f.on.value, where: $("textarea", where).value.trim(), chart: f.chart.value });
  const run = async () => {
    const q = current();
    const events = [...new Set([q.event, ...q.also])];
    result.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      const answers = await Promise.all(events.map((e) => segmentation({ ...q, event: e })));
      const series = events.length === 1 ? insightsSeries(answers[0], q.on)
        : answers.flatMap((a, i) => insightsSeries(a, q.on).map((x) => ({ name: q.on ? `${events[i]} · ${x.name}` : x.name, points: x.points })));
      result.replaceChildren(timeChart(series, { kind: q.chart, title: events.join(", "), notes: { from: q.from, to: q.to } }));
      result.dataset.loaded = "1";
    } catch (err) { result.replaceChildren(errorBox(err)); }
  };
  const name = h("input", { name: "report-name", placeholder: "report name", "aria-label": "report name" });
  const saved = h("span", { "aria-live": "polite" });
  const save = async () => {
    const q = current();
    const events = [...new Set([q.event, ...q.also])];
    const body = { name: name.value || `${events.join(", ")} by ${q.unit}`, query: { event: events.length > 1 ? events : q.event, type: q.type, unit: q.unit, from_date: q.from, to_date: q.to, on: q.on ? `properties[${JSON.stringify(q.on)}]` : undefined, where: q.where || undefined, chart: q.chart } };
    try {
      const b = (await app("/bookmarks", { method: "POST", body })).results;
      go(`/insights/bookmark/${b.id}`);
    } catch (err) { saved.replaceChildren(errorBox(err)); }
  };
  show(
    h("h1", {}, "Insights"),
    h("section", { class: "card" },
      h("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); go("/insights", current()); } },
        field("Event", f.event), alsoBox, h("button", { type: "button", class: "quiet", onclick: () => addAlso() }, "+ event"), field("Measure", f.type), field("Unit", f.unit), field("From", f.from), field("To", f.to),
        field("Breakdown", f.on), field("Chart", f.chart), h("button", { type: "submit" }, "Run")),
      where),
    h("section", { class: "card" }, result),
    h("section", { class: "card" }, h("h2", {}, "Save as a report"), h("div", { class: "row" }, name, h("button", { type: "button", onclick: save }, "Save report"), saved)),
    savedBox,
  );
  f.event.addEventListener("change", () => go("/insights", { ...current(), on: "" }));
  if (event) await run();
  if (known) {
    const [allNames, allProps] = await Promise.all([eventNames(from, to), propertyNames(event, from, to)]);
    for (const sel of [f.event, ...alsoSelects]) fillOptions(sel, [...new Set([sel.value, ...allNames])].map((n) => [n, n]), sel.value);
    names.splice(0, names.length, ...new Set([...names, ...allNames]));
    fillOptions(f.on, [["", "No breakdown"], ...[...new Set([...props, ...allProps])].map((p) => [p, p])], f.on.value);
    $("#props-list").replaceChildren(...allProps.map((p) => h("option", { value: p })));
  }
  savedBox.replaceWith(await savedList("/bookmarks", (b) => `#/insights/bookmark/${b.id}`, "Saved reports"));
}

function fillOptions(sel, options, value) {
  sel.replaceChildren(...options.map(([v, t]) => h("option", { value: v, selected: v === value }, t ?? v)));
}

async function savedList(path, href, title) {
  const items = (await app(path)).results;
  return h("section", { class: "card" }, h("h2", {}, title), items.length
    ? h("ul", { class: "list" }, items.map((x) => h("li", {}, h("a", { href: href(x) }, x.name), h("span", { class: "muted" }, x.created || ""))))
    : h("p", { class: "muted" }, "None yet."));
}

async function bookmarkCard(id, { withTools = false } = {}) {
  const [bookmark, answer] = await Promise.all([app(`/bookmarks/${id}`), query("insights", { bookmark_id: id })]);
  const b = bookmark.results;
  const q = b.query;
  const desc = [Array.isArray(q.event) ? q.event.join(", ") : q.event, q.type || "general", `by ${q.unit || "day"}`, q.on ? `broken down by ${q.on}` : "", q.where ? `where ${q.where}` : ""].filter(Boolean).join(" · ");
  const also = Array.isArray(q.event) ? q.event.slice(1).map((e) => `&also=${encodeURIComponent(e)}`).join("") : "";
  const open = `#/insights?${new URLSearchParams({ event: Array.isArray(q.event) ? q.event[0] : q.event, type: q.type || "general", unit: q.unit || "day", from: q.from_date || "", to: q.to_date || "", where: q.where || "", chart: q.chart || "line", on: (q.on || "").replace(/^properties\["(.*)"\]$/, "$1") })}${also}`;
  return h("section", { class: "card report", "data-bookmark": id },
    h("h2", {}, h("a", { href: `#/insights/bookmark/${id}` }, b.name)),
    h("p", { class: "muted" }, desc, withTools ? [" · ", h("a", { href: open }, "edit a copy")] : null),
    timeChart(bookmarkSeries(answer), { kind: q.chart || "line", title: b.name, notes: notesRange(q, answer) }),
    withTools ? await addToDashboard({ type: "bookmark", id: Number(id) }) : null);
}

async function viewBookmark(id) {
  show(h("h1", {}, "Insights report"), await bookmarkCard(id, { withTools: true }));
}

// -- Funnels -------------------------------------------------------------------------------------------

function funnelBars(steps) {
  const first = steps[0] ? steps[0].count : 0;
  return h("div", { class: "funnel" }, steps.map((s, i) => h("div", { class: "step", "data-step": i, "data-count": s.count },
    h("div", { class: "bar-box" }, h("div", { class: "bar", style: `height:${first ? (100 * s.count) / first : 0}%`, title: `${s.count}` })),
    h("span", {}, `${i + 1}. ${s.step_label || s.event}`),
    h("strong", {}, fmt(s.count)),
    h("span", { class: "muted", "data-ratio": s.overall_conv_ratio }, `${pct(s.overall_conv_ratio)} overall`),
    i ? h("span", { class: "muted", "data-step-ratio": s.step_conv_ratio }, `${pct(s.step_conv_ratio)} from previous`) : null,
    i ? h("span", { class: "muted" }, `avg ${duration(s.avg_time)} (from start ${duration(s.avg_time_from_start)})`) : null)));
}
function funnelSegments(byKey) {
  const segs = Object.entries(byKey).filter(([k]) => k !== "$overall");
  if (!segs.length) return null;
  const n = byKey.$overall.length;
  return h("div", { class: "scroll" }, h("table", { class: "numbers" },
    h("thead", {}, h("tr", {}, h("th", {}, "segment"), [...Array(n).keys()].map((i) => h("th", {}, `step ${i + 1}`)), h("th", {}, "overall"))),
    h("tbody", {}, segs.map(([name, steps]) => h("tr", { "data-series": name }, h("th", { scope: "row" }, name),
      steps.map((s) => h("td", { "data-value": s.count }, fmt(s.count))), h("td", {}, pct(steps[n - 1].overall_conv_ratio)))))));
}
// One bucket over the whole range (interval = its length in days), so the page shows the range's funnel.
async function funnelAnswer(id, from, to, on) {
  const answer = await query("funnels", { funnel_id: id, from_date: from, to_date: to, interval: daysBetween(from, to) + 1, on: on ? `properties[${JSON.stringify(on)}]` : undefined });
  const key = answer.meta.dates[0];
  const bucket = answer.data[key];
  return on ? { steps: bucket.$overall, segments: bucket } : { steps: bucket.steps, segments: null };
}
async function funnelCard(id, from, to, on, { withTools = false } = {}) {
  const [saved, r] = await Promise.all([app(`/funnels/${id}`), funnelAnswer(id, from, to, on)]);
  const f = saved.results;
  return h("section", { class: "card report", "data-funnel": id },
    h("h2", {}, h("a", { href: `#/funnels/${id}?${new URLSearchParams({ from, to })}` }, f.name)),
    h("p", { class: "muted" }, `${from} → ${to} · within ${f.length} ${f.length_unit}${f.length > 1 ? "s" : ""} · ${f.counting}${on ? ` · by ${on}` : ""}`),
    funnelBars(r.steps), r.segments ? funnelSegments(r.segments) : null,
    withTools ? await addToDashboard({ type: "funnel", id: Number(id), from_date: from, to_date: to }) : null);
}

async function viewFunnels(rest, params) {
  const to = params.get("to") || today();
  const from = params.get("from") || addDays(to, -29);
  const id = rest[0];
  // The saved funnel's answer first, then the pickers' lists, so that their scans do not slow it down.
  const card = id ? await funnelCard(id, from, to, params.get("on") || "", { withTools: true }) : h("p", { class: "muted" }, "Choose the steps, then run.");
  const names = await eventNames(from, to);
  const existing = id ? (await app(`/funnels/${id}`)).results : null;
  const stepsBox = h("div", { class: "controls" });
  const addStep = (value) => stepsBox.append(field(`Step ${stepsBox.children.length + 1}`, eventSelect("step", names, value, `step ${stepsBox.children.length + 1}`)));
  (existing ? existing.steps.map((s) => s.event) : names.slice(0, 2)).forEach(addStep);
  const props = await propertyNames(existing ? existing.steps[0].event : names[0], from, to);
  const f = {
    name: h("input", { name: "funnel-name", value: existing ? existing.name : "", placeholder: "funnel name" }),
    length: h("input", { type: "number", name: "length", min: 1, value: existing ? existing.length : 7, style: "width:6em" }),
    unit: select("length_unit", [["minute", "minutes"], ["hour", "hours"], ["day", "days"]], existing ? existing.length_unit : "day"),
    from: h("input", { type: "date", name: "from", value: from }),
    to: h("input", { type: "date", name: "to", value: to }),
    on: select("on", [["", "No breakdown"], ...props.map((p) => [p, p])], params.get("on") || ""),
  };
  const out = h("div", { "aria-live": "polite" });
  const run = async (e) => {
    e.preventDefault();
    const body = { name: f.name.value || "Funnel", steps: [...stepsBox.querySelectorAll("select")].map((s) => ({ event: s.value })), length: Number(f.length.value), length_unit: f.unit.value };
    try {
      const saved = id ? await app(`/funnels/${id}`, { method: "PATCH", body }) : await app("/funnels", { method: "POST", body });
      const before = location.hash;
      go(`/funnels/${saved.results.funnel_id}`, { from: f.from.value, to: f.to.value, on: f.on.value });
      if (location.hash === before) render(); // same URL: no hashchange, so run it again here
    } catch (err) { out.replaceChildren(errorBox(err)); }
  };
  show(
    h("h1", {}, "Funnels"),
    h("section", { class: "card" }, h("form", { onsubmit: run },
      h("div", { class: "controls" }, field("Name", f.name), field("Conversion window", h("span", { class: "row" }, f.length, f.unit)), field("From", f.from), field("To", f.to), field("Breakdown", f.on)),
      h("h2", { style: "margin-top:14px" }, "Steps"), stepsBox,
      h("div", { class: "row", style: "margin-top:12px" },
        h("button", { type: "button", class: "quiet", onclick: () => addStep(names[0]) }, "+ step"),
        h("button", { type: "submit" }, id ? "Save and run" : "Save funnel and run")), out)),
    card,
    await savedList("/funnels", (x) => `#/funnels/${x.funnel_id}?${new URLSearchParams({ from, to })}`, "Saved funnels"),
  );
}

// -- Retention -----------------------------------------------------------------------------------------

function heatMap(answer, unit) {
  const cohorts = Object.entries(answer).sort(([a], [b]) => a.localeCompare(b));
  const width = Math.max(0, ...cohorts.map(([, c]) => c.counts.length));
  return h("div", { class: "scroll" }, h("table", { class: "numbers heat" },
    h("thead", {}, h("tr", {}, h("th", {}, "cohort"), h("th", {}, "people"), [...Array(width).keys()].map((i) => h("th", {}, `${unit} ${i}`)))),
    h("tbody", {}, cohorts.map(([day, c]) => h("tr", { "data-cohort": day }, h("th", { scope: "row" }, day), h("td", { "data-first": c.first }, fmt(c.first)),
      [...Array(width).keys()].map((i) => {
        if (i >= c.counts.length) return h("td", {});
        const r = c.first ? c.counts[i] / c.first : 0;
        return h("td", { class: "cell", "data-value": c.counts[i], title: `${c.counts[i]} of ${c.first}`, style: `background:rgba(79,70,229,${(0.08 + 0.8 * r).toFixed(2)});color:${r > 0.5 ? "#fff" : "inherit"}` }, c.first ? pct(r) : "–");
      }))))));
}

async function viewRetention(rest, params) {
  const to = params.get("to") || today();
  const from = params.get("from") || addDays(to, -13);
  const names = await eventNames(from, to);
  const f = {
    born: eventSelect("born_event", names, params.get("born") || names[0], "first event"),
    event: select("event", [["", "any event"], ...names.map((n) => [n, n])], params.get("event") || ""),
    type: select("retention_type", [["birth", "First time (birth)"], ["compounded", "Recurring (compounded)"]], params.get("type") || "birth"),
    unit: select("unit", [["day", "Day"], ["week", "Week"], ["month", "Month"]], params.get("unit") || "day"),
    count: h("input", { type: "number", name: "interval_count", min: 1, max: 90, value: params.get("count") || 7, style: "width:6em" }),
    from: h("input", { type: "date", name: "from", value: from }),
    to: h("input", { type: "date", name: "to", value: to }),
  };
  const current = () => ({ born: f.born.value, event: f.event.value, type: f.type.value, unit: f.unit.value, count: f.count.value, from: f.from.value, to: f.to.value });
  const result = h("div", { id: "result" });
  show(
    h("h1", {}, "Retention"),
    h("section", { class: "card" }, h("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); go("/retention", { ...current(), run: 1 }); } },
      field("People who did", f.born), field("and came back to", f.event), field("Cohorts", f.type), field("Unit", f.unit), field("Intervals", f.count),
      field("From", f.from), field("To", f.to), h("button", { type: "submit" }, "Run"))),
    h("section", { class: "card" }, result),
  );
  if (!params.get("run") || !f.born.value) return;
  const q = current();
  try {
    const answer = await query("retention", { born_event: q.born, event: q.event || undefined, retention_type: q.type, unit: q.unit, interval_count: q.count, from_date: q.from, to_date: q.to });
    result.replaceChildren(heatMap(answer, q.unit));
    result.dataset.loaded = "1";
  } catch (err) { result.replaceChildren(errorBox(err)); }
}

// -- Users ---------------------------------------------------------------------------------------------

async function viewUsers(rest, params) {
  if (rest[0]) return viewProfile(rest[0], params);
  const cohortId = params.get("cohort") || "";
  const cohorts = await query("cohorts/list");
  const where = h("input", { name: "where", value: params.get("where") || "", placeholder: 'user["plan"] == "pro"', "aria-label": "where", style: "min-width:min(420px,100%)" });
  const cohort = select("cohort", [["", "All users"], ...cohorts.map((c) => [String(c.id), `${c.name} (${fmt(c.count)})`])], cohortId);
  const out = h("div", { id: "result" });
  const cohortName = h("input", { name: "cohort-name", placeholder: "cohort name", "aria-label": "cohort name" });
  const saved = h("span", { "aria-live": "polite" });
  const saveCohort = async () => {
    try {
      const c = (await app("/cohorts", { method: "POST", body: { name: cohortName.value || "Cohort", filter: where.value || null } })).results;
      go("/users", { cohort: c.id });
    } catch (err) { saved.replaceChildren(errorBox(err)); }
  };
  show(h("h1", {}, "Users"),
    h("section", { class: "card" }, h("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); go("/users", { where: where.value, cohort: cohort.value }); } },
      field("Cohort", cohort), field("Where (profile properties)", where), h("button", { type: "submit" }, "Search")),
      h("div", { class: "row", style: "margin-top:10px" }, cohortName, h("button", { type: "button", class: "quiet", onclick: saveCohort }, "Save as cohort"), saved)),
    h("section", { class: "card" }, out));
  try {
    // Pages of 100 profiles; later pages name the first page's session_id, so that they slice the same
    // ordered list (docs/query-engage.md). `total` comes with page 0 only: kept for the later pages.
    const page = Math.max(0, Number(params.get("page")) || 0);
    const session = page ? params.get("session") || undefined : undefined;
    const r = await query("engage", { where: where.value || undefined, filter_by_cohort: cohortId ? JSON.stringify({ id: Number(cohortId) }) : undefined, page_size: USERS_PAGE, page: page || undefined, session_id: session });
    if (r.total !== undefined && r.session_id) engageTotals.set(r.session_id, r.total);
    const total = page ? engageTotals.get(session) : (r.total ?? r.results.length);
    const first = page * USERS_PAGE;
    const keys = ["$name", "$email", "$city"];
    const to = (p) => `#/users?${new URLSearchParams({ where: where.value, cohort: cohortId, page: p, session: r.session_id || session || "" })}`;
    const pager = h("nav", { class: "row pager", "aria-label": "pages of profiles" },
      page ? h("a", { href: to(page - 1), rel: "prev" }, "← Previous 100") : null,
      r.results.length === USERS_PAGE && (total === undefined || first + USERS_PAGE < total) ? h("a", { href: to(page + 1), rel: "next" }, "Next 100 →") : null);
    const range = r.results.length ? `${fmt(first + 1)}–${fmt(first + r.results.length)}` : "none";
    out.replaceChildren(h("div", { class: "row", style: "justify-content:space-between" },
      h("p", { class: "muted", "data-total": total ?? "" }, total !== undefined ? `${fmt(total)} profiles · showing ${range}` : `showing ${range}`), pager),
    h("div", { class: "scroll" }, h("table", { class: "numbers text" },
      h("thead", {}, h("tr", {}, h("th", {}, "distinct id"), keys.map((k) => h("th", {}, k)))),
      h("tbody", {}, r.results.map((p) => h("tr", { "data-user": p.$distinct_id }, h("th", { scope: "row" }, h("a", { href: `#/users/${encodeURIComponent(p.$distinct_id)}` }, p.$distinct_id)),
        keys.map((k) => h("td", {}, String(p.$properties[k] ?? "")))))))), pager.cloneNode(true));
  } catch (err) { out.replaceChildren(errorBox(err)); }
}
const USERS_PAGE = 100;
const engageTotals = new Map(); // session_id -> total of its page 0

async function viewProfile(id, params) {
  const to = params.get("to") || today();
  const from = params.get("from") || addDays(to, -29);
  const [profile, stream] = await Promise.all([
    query("engage", { distinct_id: id }),
    query("stream/query", { distinct_ids: JSON.stringify([id]), from_date: from, to_date: to }),
  ]);
  const props = profile.results[0] ? profile.results[0].$properties : {};
  const events = stream.results.events.slice().reverse();
  const f = { from: h("input", { type: "date", name: "from", value: from }), to: h("input", { type: "date", name: "to", value: to }) };
  show(h("h1", {}, id),
    h("section", { class: "card" }, h("h2", {}, "Profile"), Object.keys(props).length
      ? h("table", { class: "numbers" }, h("tbody", {}, Object.entries(props).map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", { style: "text-align:left" }, typeof v === "object" ? JSON.stringify(v) : String(v))))))
      : h("p", { class: "muted" }, "No profile properties.")),
    h("section", { class: "card" }, h("h2", {}, "Activity"),
      h("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); go(`/users/${encodeURIComponent(id)}`, { from: f.from.value, to: f.to.value }); } }, field("From", f.from), field("To", f.to), h("button", { type: "submit" }, "Show")),
      h("p", { class: "muted" }, `${events.length} events, newest first`),
      h("ul", { class: "list stream" }, events.map((e) => h("li", { "data-event": e.event, "data-time": e.properties.time },
        h("strong", {}, e.event), " ", h("span", { class: "muted" }, new Date(e.properties.time * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC"), h("br"),
        h("code", {}, JSON.stringify(Object.fromEntries(Object.entries(e.properties).filter(([k]) => !k.startsWith("$") && k !== "time")))))))));
}

// -- Lexicon -------------------------------------------------------------------------------------------

// Lexicon's schema of each event (`/schemas/event`): description, display name, tags, property types.
async function eventSchemas() {
  try { return new Map((await app("/schemas/event")).results.map((e) => [e.name, e.schemaJson])); } catch { return new Map(); }
}
const mp = (schema) => (schema && schema.metadata && schema.metadata["com.mixpanel"]) || {};

async function viewLexicon(rest, params) {
  const to = params.get("to") || today();
  const from = params.get("from") || addDays(to, -29);
  const wanted = params.get("event");
  // Names and schemas at once; with an event in the URL, its properties too.
  const topOf = (event) => query("events/properties/top", { event: JSON.stringify([event]), limit: 100, from_date: from, to_date: to });
  const [names, schemas, early] = await Promise.all([eventNames(from, to), eventSchemas(), wanted ? topOf(wanted) : null]);
  const selected = wanted || names[0];
  const [volumes, props] = await Promise.all([
    names.length ? query("events", { event: JSON.stringify(names), type: "general", unit: "month", from_date: from, to_date: to }) : { data: { values: {} } },
    early || (selected ? topOf(selected) : {}),
  ]);
  const total = (n) => Object.values(volumes.data.values[n] || {}).reduce((a, b) => a + b, 0);
  const schema = schemas.get(selected) || null;
  const schemaProps = (schema && schema.properties) || {};
  const propNames = [...Object.keys(props), ...Object.keys(schemaProps).filter((p) => !(p in props)).sort()];
  const f = { from: h("input", { type: "date", name: "from", value: from }), to: h("input", { type: "date", name: "to", value: to }) };
  const tags = (m) => (m.tags || []).map((t) => h("span", { class: "tag" }, t));
  show(h("h1", {}, "Lexicon"),
    h("section", { class: "card" }, h("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); go("/lexicon", { from: f.from.value, to: f.to.value }); } }, field("From", f.from), field("To", f.to), h("button", { type: "submit" }, "Show"))),
    h("div", { class: "grid" },
      h("section", { class: "card" }, h("h2", {}, "Events"), h("div", { class: "scroll" }, h("table", { class: "numbers lexicon" },
        h("thead", {}, h("tr", {}, h("th", {}, "event"), h("th", { class: "desc" }, "description"), h("th", {}, "events in range"))),
        h("tbody", {}, names.map((n) => {
          const s = schemas.get(n); const m = mp(s);
          return h("tr", { "data-series": n }, h("th", { scope: "row" }, h("a", { href: `#/lexicon?${new URLSearchParams({ from, to, event: n })}`, "aria-current": n === selected ? "true" : null }, m.displayName || n),
            m.displayName && m.displayName !== n ? h("div", { class: "muted small" }, n) : null),
          h("td", { class: "desc", "data-description": (s && s.description) || "" }, (s && s.description) || "", tags(m)),
          h("td", { "data-value": total(n) }, fmt(total(n))));
        }))))),
      h("section", { class: "card" }, h("h2", {}, selected ? `Properties of ${(mp(schema).displayName) || selected}` : "Properties"),
        schema && schema.description ? h("p", { class: "muted" }, schema.description) : null,
        h("div", { class: "scroll" }, h("table", { class: "numbers lexicon" },
        h("thead", {}, h("tr", {}, h("th", {}, "property"), h("th", { class: "type" }, "type"), h("th", { class: "desc" }, "description"), h("th", {}, "events carrying it"))),
        h("tbody", {}, propNames.map((p) => {
          const sp = schemaProps[p] || {}; const m = mp(sp);
          return h("tr", { "data-series": p, "data-type": sp.type || "" }, h("th", { scope: "row" }, m.displayName || p, m.displayName && m.displayName !== p ? h("div", { class: "muted small" }, p) : null),
            h("td", { class: "type" }, sp.type || "–"), h("td", { class: "desc", "data-description": sp.description || "" }, sp.description || ""),
            p in props ? h("td", { "data-value": props[p].count }, fmt(props[p].count)) : h("td", { class: "muted" }, "none in range"));
        })))))));
}

// -- Dashboards ----------------------------------------------------------------------------------------

async function viewDashboards(rest) {
  if (rest[0]) {
    const d = (await app(`/dashboards/${rest[0]}`)).results;
    const remove = async (i) => {
      await app(`/dashboards/${d.id}`, { method: "PATCH", body: { items: d.items.filter((_, j) => j !== i) } });
      render();
    };
    const cards = await Promise.all(d.items.map(async (item, i) => {
      const card = await (item.type === "bookmark" ? bookmarkCard(item.id) : funnelCard(item.id, item.from_date, item.to_date, ""))
        .catch((err) => h("section", { class: "card" }, errorBox(err)));
      card.append(h("button", { type: "button", class: "quiet", onclick: () => remove(i) }, "Remove from dashboard"));
      return card;
    }));
    const del = h("button", { type: "button", class: "quiet", onclick: async () => {
      if (!confirm(`Delete the dashboard ${d.name}?`)) return;
      await app(`/dashboards/${d.id}`, { method: "DELETE" });
      go("/dashboards");
    } }, "Delete dashboard");
    show(h("div", { class: "row", style: "justify-content:space-between" }, h("h1", {}, d.name), del),
      cards.length ? h("div", { class: "grid" }, cards) : h("p", { class: "muted" }, "Add reports from a saved Insights report or funnel."));
    return;
  }
  const name = h("input", { name: "dashboard-name", placeholder: "dashboard name", "aria-label": "dashboard name" });
  const out = h("span", { "aria-live": "polite" });
  show(h("h1", {}, "Dashboards"),
    h("section", { class: "card" }, h("form", { class: "row", onsubmit: async (e) => {
      e.preventDefault();
      try { const d = (await app("/dashboards", { method: "POST", body: { name: name.value, items: [] } })).results; go(`/dashboards/${d.id}`); } catch (err) { out.replaceChildren(errorBox(err)); }
    } }, name, h("button", { type: "submit" }, "New dashboard"), out)),
    await savedList("/dashboards", (d) => `#/dashboards/${d.id}`, "Dashboards"));
}

boot();
