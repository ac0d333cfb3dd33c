// The JQL runtime: Events(), People(), join(), the collection transformations and the mixpanel.*
// builtins, as documented at https://docs.mixpanel.com/docs/reports/apps/jql.
//
// main() builds a plan (a source and a chain of stages); the host reads the source with
// __jql.plan(), streams records in batches through __jql.pushEvents / pushUsers, and collects the
// answer with __jql.finish(). Reductions run incrementally with Mixpanel's partial-accumulator
// contract, so memory stays bounded by the number of groups, not the number of events.
(function (global) {
  "use strict";

  var CHUNK = 5000; // items per reducer call
  var MAX_BUFFERED = 100000; // items held in group buffers before every group is flushed
  // The heap's bound. Records enter the pipeline SLICE at a time; finished users leave a groupByUser
  // DONE_FLUSH at a time; the answer leaves the heap (to the host) once OUT_BYTES of it are waiting. So
  // a user-by-user script holds about SLICE users' states and OUT_BYTES of answer, whatever the user count.
  var SLICE = 64;
  var DONE_FLUSH = 16;
  var OUT_BYTES = 1 << 20;

  // ---- helpers ------------------------------------------------------------------------------

  function JqlError(message) {
    var e = new Error(message);
    e.name = "Error";
    return e;
  }

  function getPath(item, path) {
    if (path === "" || path === undefined || path === null) return item;
    var parts = String(path).split(".");
    var v = item;
    for (var i = 0; i < parts.length; i++) {
      if (v === null || v === undefined) return undefined;
      v = v[parts[i]];
    }
    return v;
  }

  function accessorFn(acc) {
    if (acc === undefined || acc === null) return function (x) { return x; };
    if (typeof acc === "function") return acc;
    if (typeof acc === "string") return function (x) { return getPath(x, acc); };
    throw JqlError("an accessor must be a property path string or a function, got " + typeof acc);
  }

  function isNumber(v) {
    return typeof v === "number" && isFinite(v);
  }

  function typeRank(v) {
    if (v === undefined || v === null) return 0;
    if (typeof v === "boolean") return 1;
    if (typeof v === "number") return 2;
    if (typeof v === "string") return 3;
    return 4;
  }

  function compareScalars(a, b) {
    var ra = typeRank(a), rb = typeRank(b);
    if (ra !== rb) return ra - rb;
    if (ra === 0) return 0;
    if (ra === 4) {
      var sa = JSON.stringify(a), sb = JSON.stringify(b);
      return sa < sb ? -1 : sa > sb ? 1 : 0;
    }
    return a < b ? -1 : a > b ? 1 : 0;
  }

  function compareKeys(a, b) {
    var n = Math.min(a.length, b.length);
    for (var i = 0; i < n; i++) {
      var c = compareScalars(a[i], b[i]);
      if (c !== 0) return c;
    }
    return a.length - b.length;
  }

  // Accumulators travel between reduction steps as JSON, as Mixpanel's engine does: functions and
  // Date objects kept in an accumulator do not survive.
  function roundTrip(v) {
    if (v === undefined) return undefined;
    var text = JSON.stringify(v);
    return text === undefined ? undefined : JSON.parse(text);
  }

  // ---- reducers -----------------------------------------------------------------------------
  // A builtin is an object {init(), add(state, items), merge(a, b), result(state)}; a custom
  // reducer is a function(accumulators, items) (reduce, groupBy) or function(state, events)
  // (groupByUser).

  function Builtin(impl) {
    var f = function () {
      throw JqlError("builtin reducers are passed to reduce(), groupBy() or groupByUser(), not called");
    };
    f.__builtin = impl;
    BUILTINS.set(f, impl);
    return f;
  }
  var BUILTINS = new WeakMap(); // each builtin's own implementation, out of the script's reach

  // A function whose reduction is a builtin's, as made (not one the script made, or changed, to look so).
  function isBuiltin(f) {
    return typeof f === "function" && BUILTINS.has(f) && BUILTINS.get(f) === f.__builtin;
  }

  // A builtin the engine can answer (see pushdownOf): which one, over which property path. `impl` is the
  // builtin itself, or its {init, add, result} (then wrapped).
  var DESCRIBED = new WeakMap(); // kept out of the script's reach: a script cannot pass its own function off
  function described(op, accessor, impl) {
    var f = typeof impl === "function" ? impl : Builtin(impl);
    DESCRIBED.set(f, { op: op, path: accessor === undefined ? null : accessor });
    return f;
  }

  function numericBuiltin(accessor, init, step, result) {
    var get = accessorFn(accessor);
    return Builtin({
      init: init,
      add: function (s, items) {
        for (var i = 0; i < items.length; i++) {
          var v = get(items[i]);
          if (isNumber(v)) s = step(s, v, items[i]);
        }
        return s;
      },
      result: result,
    });
  }

  var reducer = {
    count: function () {
      return described("count", undefined, {
        init: function () { return 0; },
        add: function (s, items) { return s + items.length; },
        result: function (s) { return s; },
      });
    },
    sum: function (accessor) {
      return described("sum", accessor, numericBuiltin(accessor, function () { return 0; }, function (s, v) { return s + v; },
        function (s) { return s; }));
    },
    avg: function (accessor) {
      return described("avg", accessor, numericBuiltin(accessor, function () { return { n: 0, sum: 0 }; },
        function (s, v) { s.n += 1; s.sum += v; return s; },
        function (s) { return s.n === 0 ? null : s.sum / s.n; }));
    },
    min: function (accessor) {
      return described("min", accessor, numericBuiltin(accessor, function () { return null; },
        function (s, v) { return s === null || v < s ? v : s; }, function (s) { return s; }));
    },
    max: function (accessor) {
      return described("max", accessor, numericBuiltin(accessor, function () { return null; },
        function (s, v) { return s === null || v > s ? v : s; }, function (s) { return s; }));
    },
    min_by: function (accessor) {
      return numericBuiltin(accessor, function () { return null; },
        function (s, v, item) { return s === null || v < s.v ? { v: v, item: item } : s; },
        function (s) { return s === null ? null : s.item; });
    },
    max_by: function (accessor) {
      return numericBuiltin(accessor, function () { return null; },
        function (s, v, item) { return s === null || v > s.v ? { v: v, item: item } : s; },
        function (s) { return s === null ? null : s.item; });
    },
    numeric_summary: function (accessor) {
      return described("numeric_summary", accessor, numericBuiltin(accessor, function () { return { count: 0, sum: 0, sum_squares: 0 }; },
        function (s, v) { s.count += 1; s.sum += v; s.sum_squares += v * v; return s; },
        function (s) {
          var avg = s.count === 0 ? 0 : s.sum / s.count;
          var variance = s.count === 0 ? 0 : Math.max(0, s.sum_squares / s.count - avg * avg);
          return { count: s.count, sum: s.sum, sum_squares: s.sum_squares, avg: avg, stddev: Math.sqrt(variance) };
        }));
    },
    numeric_percentiles: function (accessor, spec) {
      var many = Array.isArray(spec);
      var ps = many ? spec : [spec];
      for (var i = 0; i < ps.length; i++) {
        if (!isNumber(ps[i]) || ps[i] < 0 || ps[i] > 100) {
          throw JqlError("numeric_percentiles: a percentile must be a number in [0, 100], got " + JSON.stringify(ps[i]));
        }
      }
      return numericBuiltin(accessor, function () { return []; },
        function (s, v) { s.push(v); return s; },
        function (s) {
          s.sort(function (a, b) { return a - b; });
          var out = ps.map(function (p) {
            var value = null;
            if (s.length > 0) {
              // nearest rank: the smallest value with at least p% of the values at or below it
              var rank = Math.ceil((p / 100) * s.length);
              value = s[Math.min(s.length - 1, Math.max(0, rank - 1))];
            }
            return { percentile: p, value: value };
          });
          return many ? out : out[0].value;
        });
    },
    top: function (limit) {
      if (!isNumber(limit) || limit < 0) throw JqlError("top: the limit must be a non-negative number");
      return Builtin({
        init: function () { return []; },
        add: function (s, items) {
          for (var i = 0; i < items.length; i++) s.push(items[i]);
          if (s.length > 4 * limit + CHUNK) s = trimTop(s, limit);
          return s;
        },
        result: function (s) { return trimTop(s, limit); },
      });
    },
    any: function () {
      return Builtin({
        init: function () { return undefined; },
        add: function (s, items) { return s === undefined && items.length > 0 ? items[0] : s; },
        result: function (s) { return s === undefined ? null : s; },
      });
    },
    null: function () {
      return Builtin({
        init: function () { return null; },
        add: function (s) { return s; },
        result: function () { return null; },
      });
    },
    object_merge: function () {
      return Builtin({
        init: function () { return {}; },
        add: function (s, items) {
          for (var i = 0; i < items.length; i++) s = mergeInto(s, items[i]);
          return s;
        },
        result: function (s) { return s; },
      });
    },
    applyGroupLimits: function (limits, globalLimit) {
      return Builtin({
        init: function () { return []; },
        add: function (s, items) { for (var i = 0; i < items.length; i++) s.push(items[i]); return s; },
        result: function (s) {
          s.sort(function (a, b) { return numericValue(b) - numericValue(a); });
          return groupLimits(s, limits, globalLimit);
        },
      });
    },
  };

  function numericValue(item) {
    var v = item === null || item === undefined ? undefined : item.value;
    return isNumber(v) ? v : -Infinity;
  }

  function trimTop(s, limit) {
    s.sort(function (a, b) { return numericValue(b) - numericValue(a); });
    return s.slice(0, limit);
  }

  function mergeInto(target, source) {
    if (isNumber(source) && (isNumber(target) || target === undefined)) return (target || 0) + source;
    if (source !== null && typeof source === "object" && !Array.isArray(source)) {
      if (target === null || typeof target !== "object" || Array.isArray(target)) target = {};
      for (var k in source) {
        if (Object.prototype.hasOwnProperty.call(source, k)) target[k] = mergeInto(target[k], source[k]);
      }
      return target;
    }
    return source === undefined ? target : source;
  }

  function groupLimits(items, limits, globalLimit) {
    limits = limits || [];
    var counts = Object.create(null); // parent prefix -> number of distinct children kept
    var kept = Object.create(null); // prefix -> true
    var out = [];
    for (var i = 0; i < items.length; i++) {
      if (isNumber(globalLimit) && out.length >= globalLimit) break;
      var key = (items[i] && Array.isArray(items[i].key)) ? items[i].key : [items[i] && items[i].key];
      var ok = true;
      var fresh = [];
      for (var level = 0; level < key.length && level < limits.length; level++) {
        var parent = JSON.stringify(key.slice(0, level));
        var prefix = JSON.stringify(key.slice(0, level + 1));
        if (kept[prefix]) continue;
        if ((counts[parent] || 0) >= limits[level]) { ok = false; break; }
        fresh.push([parent, prefix]);
      }
      if (!ok) continue;
      for (var f = 0; f < fresh.length; f++) {
        counts[fresh[f][0]] = (counts[fresh[f][0]] || 0) + 1;
        kept[fresh[f][1]] = true;
      }
      out.push(items[i]);
    }
    return out;
  }

  // One reducer spec (a builtin or a function, or a list of them) as {init, add, result} working on
  // one group. `userMode`: groupByUser's (state, events) contract for custom functions.
  function compileReducers(spec, userMode) {
    if (spec === undefined) throw JqlError("a reducer is required");
    var list = Array.isArray(spec);
    var specs = list ? spec : [spec];
    var parts = specs.map(function (r) {
      if (typeof r !== "function") throw JqlError("a reducer must be a function or a mixpanel.reducer builtin");
      if (r.__builtin) return r.__builtin;
      if (userMode) {
        return {
          init: function () { return undefined; },
          add: function (s, items) { return roundTrip(r(s, items)); },
          result: function (s) { return s; },
        };
      }
      return {
        init: function () { return { called: false, value: undefined }; },
        add: function (s, items) {
          var value = r(s.called ? [s.value] : [], items);
          return { called: true, value: roundTrip(value) };
        },
        result: function (s) { return s.called ? s.value : roundTrip(r([], [])); },
      };
    });
    return {
      init: function () { return parts.map(function (p) { return p.init(); }); },
      add: function (states, items) {
        for (var i = 0; i < parts.length; i++) states[i] = parts[i].add(states[i], items);
        return states;
      },
      result: function (states) {
        var values = parts.map(function (p, i) { return p.result(states[i]); });
        return list ? values : values[0];
      },
    };
  }

  // ---- keys ---------------------------------------------------------------------------------

  function normalizeKeys(keys) {
    if (keys === undefined || keys === null) return [];
    var specs = Array.isArray(keys) && !keys.__multiple ? keys : [keys];
    var out = [];
    for (var i = 0; i < specs.length; i++) {
      var s = specs[i];
      if (Array.isArray(s)) {
        for (var j = 0; j < s.length; j++) out.push(keyPart(s[j], !!s.__multiple));
      } else {
        out.push(keyPart(s, false));
      }
    }
    return out;
  }

  function keyPart(spec, multiple) {
    if (spec && spec.__multiple_key) return { get: accessorFn(spec.spec), multiple: true, path: null };
    return { get: accessorFn(spec), multiple: multiple, path: typeof spec === "string" ? spec : null };
  }

  // Every composite key of an item: a list value is inlined, or fanned out under multiple_keys.
  function keysOf(parts, item, prefix) {
    var keys = [prefix ? prefix.slice() : []];
    for (var i = 0; i < parts.length; i++) {
      var v = parts[i].get(item);
      if (parts[i].multiple && Array.isArray(v)) {
        var next = [];
        for (var k = 0; k < keys.length; k++) {
          for (var e = 0; e < v.length; e++) next.push(keys[k].concat([v[e]]));
        }
        keys = next;
      } else {
        for (var m = 0; m < keys.length; m++) {
          if (Array.isArray(v)) Array.prototype.push.apply(keys[m], v);
          else keys[m].push(v);
        }
      }
    }
    return keys;
  }

  // ---- collections --------------------------------------------------------------------------

  function Collection(source, stages) {
    this.__source = source;
    this.__stages = stages || [];
  }

  function extend(c, stage) {
    return new Collection(c.__source, c.__stages.concat([stage]));
  }

  Collection.prototype.filter = function (fn) {
    if (typeof fn !== "function") throw JqlError("filter() takes a function");
    return extend(this, { op: "filter", fn: fn });
  };
  Collection.prototype.map = function (fn) {
    if (typeof fn !== "function") throw JqlError("map() takes a function");
    return extend(this, { op: "map", fn: fn });
  };
  Collection.prototype.flatten = function () {
    return extend(this, { op: "flatten" });
  };
  Collection.prototype.reduce = function (reducers) {
    return extend(this, { op: "reduce", reducers: compileReducers(reducers, false), spec: reducers });
  };
  Collection.prototype.groupBy = function (keys, reducers) {
    return extend(this, {
      op: "groupBy", keys: normalizeKeys(keys), reducers: compileReducers(reducers, false), spec: reducers,
    });
  };
  Collection.prototype.groupByUser = function (keys, reducers) {
    if (reducers === undefined) { reducers = keys; keys = []; }
    for (var i = 0; i < this.__stages.length; i++) {
      if (this.__stages[i].op !== "filter") {
        throw JqlError("groupByUser() can only be applied to Events(), People() or join(), optionally after filter()");
      }
    }
    return extend(this, {
      op: "groupByUser", keys: normalizeKeys(keys), reducers: compileReducers(reducers, true), spec: reducers,
    });
  };
  Collection.prototype.sortAsc = function (accessor) {
    return extend(this, { op: "sort", get: accessorFn(accessor), desc: false });
  };
  Collection.prototype.sortDesc = function (accessor) {
    return extend(this, { op: "sort", get: accessorFn(accessor), desc: true });
  };
  Collection.prototype.applyGroupLimits = function (limits, globalLimit) {
    if (!Array.isArray(limits)) throw JqlError("applyGroupLimits() takes an array of limits");
    return extend(this, { op: "limits", limits: limits, global: globalLimit });
  };

  function selectorList(list, what) {
    if (list === undefined || list === null) return [];
    if (!Array.isArray(list)) throw JqlError(what + " must be an array");
    return list.map(function (s) {
      if (s === null || typeof s !== "object") throw JqlError(what + " must hold objects");
      var out = {};
      if (s.event !== undefined) out.event = String(s.event);
      if (s.selector !== undefined && s.selector !== null && String(s.selector).trim() !== "") out.selector = String(s.selector);
      if (s.label !== undefined) out.label = String(s.label);
      return out;
    });
  }

  function Events(spec) {
    spec = spec || {};
    if (typeof spec !== "object") throw JqlError("Events() takes an object");
    if (spec.from_date === undefined || spec.to_date === undefined) {
      throw JqlError("Events() requires from_date and to_date");
    }
    return new Collection({
      kind: "events",
      from_date: dateText(spec.from_date, "from_date"),
      to_date: dateText(spec.to_date, "to_date"),
      event_selectors: selectorList(spec.event_selectors, "event_selectors"),
    });
  }

  function dateText(v, name) {
    if (v instanceof Date) return v.toISOString().slice(0, 10);
    if (typeof v !== "string") throw JqlError(name + " must be a date string YYYY-MM-DD");
    return v;
  }

  function People(spec) {
    spec = spec || {};
    if (typeof spec !== "object") throw JqlError("People() takes an object");
    return new Collection({ kind: "people", user_selectors: selectorList(spec.user_selectors, "user_selectors") });
  }

  function join(events, people, options) {
    if (!(events instanceof Collection) || events.__source.kind !== "events" || events.__stages.length) {
      throw JqlError("join() takes Events(...) as its first argument, without transformations");
    }
    if (!(people instanceof Collection) || people.__source.kind !== "people" || people.__stages.length) {
      throw JqlError("join() takes People(...) as its second argument, without transformations");
    }
    options = options || {};
    var type = options.type === undefined ? "full" : String(options.type);
    if (["full", "left", "right", "inner"].indexOf(type) < 0) {
      throw JqlError("join() type must be one of full, left, right, inner; got " + JSON.stringify(options.type));
    }
    return new Collection({
      kind: "join",
      events: events.__source,
      people: people.__source,
      type: type,
      selectors: selectorList(options.selectors, "join selectors"),
    });
  }

  // ---- execution ----------------------------------------------------------------------------

  // The answer as JSON text, made as items arrive and handed to the host by drain(): the heap never holds
  // the whole answer. An undefined item (or value) is null, as JSON.stringify writes it inside an array.
  function Sink() {
    this.parts = [];
    this.bytes = 0;
  }
  function undefinedAsNull(k, v) { return v === undefined ? null : v; }
  Sink.prototype.push = function (items) {
    if (!items.length) return;
    var text = JSON.stringify(items, undefinedAsNull);
    this.parts.push(text.slice(1, -1));
    this.bytes += text.length;
  };
  Sink.prototype.finish = function () {};
  Sink.prototype.drain = function () {
    var text = this.parts.join(",");
    this.parts = [];
    this.bytes = 0;
    return text;
  };

  function FilterOp(fn, next) { this.fn = fn; this.next = next; }
  FilterOp.prototype.push = function (items) {
    var out = [];
    for (var i = 0; i < items.length; i++) if (this.fn(items[i])) out.push(items[i]);
    if (out.length) this.next.push(out);
  };
  FilterOp.prototype.finish = function () { this.next.finish(); };

  function MapOp(fn, next) { this.fn = fn; this.next = next; }
  MapOp.prototype.push = function (items) {
    var out = new Array(items.length);
    for (var i = 0; i < items.length; i++) out[i] = this.fn(items[i]);
    this.next.push(out);
  };
  MapOp.prototype.finish = function () { this.next.finish(); };

  function FlattenOp(next) { this.next = next; }
  FlattenOp.prototype.push = function (items) {
    var out = [];
    for (var i = 0; i < items.length; i++) {
      if (Array.isArray(items[i])) Array.prototype.push.apply(out, items[i]);
      else out.push(items[i]);
    }
    if (out.length) this.next.push(out);
  };
  FlattenOp.prototype.finish = function () { this.next.finish(); };

  function ReduceOp(reducers, next) {
    this.r = reducers; this.next = next; this.state = reducers.init(); this.buf = [];
  }
  ReduceOp.prototype.push = function (items) {
    for (var i = 0; i < items.length; i++) this.buf.push(items[i]);
    if (this.buf.length >= CHUNK) { this.state = this.r.add(this.state, this.buf); this.buf = []; }
  };
  ReduceOp.prototype.finish = function () {
    if (this.buf.length) this.state = this.r.add(this.state, this.buf);
    this.buf = [];
    this.next.push([this.r.result(this.state)]);
    this.next.finish();
  };

  // The identity of a composite key: a cheap string for the common one- and two-part string keys, JSON
  // otherwise (the prefixes keep the two forms apart).
  function groupId(key) {
    if (key.length === 1 && typeof key[0] === "string") return "s" + key[0];
    if (key.length === 2 && typeof key[0] === "string" && typeof key[1] === "string" && key[0].indexOf("\u0000") < 0) {
      return "t" + key[0] + "\u0000" + key[1];
    }
    return "j" + JSON.stringify(key);
  }

  // groupBy and groupByUser: groups keyed by the JSON of their composite key, items buffered per group
  // and handed to the reducer in chunks. The source streams in time order, so each group's chunks
  // arrive in time order too (groupByUser's guarantee).
  // With `streamUsers` (groupByUser over a source read user by user, each user's events contiguous and
  // in time order) the groups of a user are finished and passed on as soon as the next user starts, so
  // memory holds one user's groups instead of every user's.
  function GroupOp(keys, reducers, byUser, next) {
    this.keys = keys; this.r = reducers; this.byUser = byUser; this.next = next;
    this.groups = new Map(); this.buffered = 0;
    this.streamUsers = false; this.current = undefined; this.done = [];
    this.simple = byUser ? keys.length === 0 : keys.length === 1 && !keys[0].multiple;
  }
  GroupOp.prototype.push = function (items) {
    for (var i = 0; i < items.length; i++) {
      var item = items[i];
      var did = item === null || item === undefined ? undefined : item.distinct_id;
      if (this.streamUsers) {
        if (this.groups.size > 0 && did !== this.current) {
          this.finishGroups(this.done);
          if (this.done.length >= DONE_FLUSH) { var finished = this.done; this.done = []; this.next.push(finished); }
        }
        this.current = did;
      }
      var ks;
      if (this.simple) {
        // one plain key part (the common groupBy(["name"]) or groupByUser()): no fan-out to work out
        var v = this.byUser ? did : this.keys[0].get(item);
        ks = Array.isArray(v) ? [v.slice()] : [[v]];
      } else {
        ks = keysOf(this.keys, item, this.byUser ? [did] : null);
      }
      for (var k = 0; k < ks.length; k++) {
        var id = groupId(ks[k]);
        var g = this.groups.get(id);
        if (g === undefined) {
          g = { key: ks[k], state: this.r.init(), buf: [] };
          this.groups.set(id, g);
        }
        g.buf.push(item);
        this.buffered += 1;
        if (g.buf.length >= CHUNK) this.flushGroup(g);
      }
    }
    if (this.buffered > MAX_BUFFERED) this.flushAll();
    if (this.done.length) { var done = this.done; this.done = []; this.next.push(done); }
  };
  // Every group so far, in key order, as {key, value} onto `out`; the groups are then forgotten.
  GroupOp.prototype.finishGroups = function (out) {
    this.flushAll();
    var groups = Array.from(this.groups.values());
    this.groups = new Map();
    groups.sort(function (a, b) { return compareKeys(a.key, b.key); });
    for (var i = 0; i < groups.length; i++) out.push({ key: groups[i].key, value: this.r.result(groups[i].state) });
  };
  GroupOp.prototype.flushGroup = function (g) {
    if (g.buf.length === 0) return;
    this.buffered -= g.buf.length;
    var buf = g.buf;
    g.buf = [];
    g.state = this.r.add(g.state, buf);
  };
  GroupOp.prototype.flushAll = function () {
    var self = this;
    this.groups.forEach(function (g) { self.flushGroup(g); });
  };
  GroupOp.prototype.finish = function () {
    var out = this.done;
    this.done = [];
    this.finishGroups(out);
    for (var i = 0; i < out.length; i += CHUNK) this.next.push(out.slice(i, i + CHUNK));
    this.next.finish();
  };

  function SortOp(get, desc, next) { this.get = get; this.desc = desc; this.next = next; this.items = []; }
  SortOp.prototype.push = function (items) { for (var i = 0; i < items.length; i++) this.items.push(items[i]); };
  SortOp.prototype.finish = function () {
    var get = this.get, sign = this.desc ? -1 : 1;
    var decorated = this.items.map(function (item, i) { return { k: get(item), i: i, item: item }; });
    decorated.sort(function (a, b) { return sign * compareScalars(a.k, b.k) || a.i - b.i; });
    this.next.push(decorated.map(function (d) { return d.item; }));
    this.next.finish();
  };

  function LimitsOp(limits, globalLimit, next) {
    this.limits = limits; this.global = globalLimit; this.next = next; this.items = [];
  }
  LimitsOp.prototype.push = function (items) { for (var i = 0; i < items.length; i++) this.items.push(items[i]); };
  LimitsOp.prototype.finish = function () {
    this.next.push(groupLimits(this.items, this.limits, this.global));
    this.next.finish();
  };

  function build(stages, sink, userOrder) {
    var op = sink;
    for (var i = stages.length - 1; i >= 0; i--) {
      var s = stages[i];
      if (s.op === "filter") op = new FilterOp(s.fn, op);
      else if (s.op === "map") op = new MapOp(s.fn, op);
      else if (s.op === "flatten") op = new FlattenOp(op);
      else if (s.op === "reduce") op = new ReduceOp(s.reducers, op);
      else if (s.op === "groupBy") op = new GroupOp(s.keys, s.reducers, false, op);
      else if (s.op === "groupByUser") {
        op = new GroupOp(s.keys, s.reducers, true, op);
        op.streamUsers = userOrder;
      }
      else if (s.op === "sort") op = new SortOp(s.get, s.desc, op);
      else if (s.op === "limits") op = new LimitsOp(s.limits, s.global, op);
    }
    return op;
  }

  // ---- pushdown ---------------------------------------------------------------------------
  // The shapes the engine answers as a whole (the host decides, and falls back to this runtime when the
  // engine's answer cannot be shown to be the same): Events(...) followed by one reduce, groupBy or
  // groupByUser (without extra keys) whose reducers are builtins over property paths, with keys that are
  // paths. A path the engine reads: name, distinct_id, or properties.<name> (one level, and not a name
  // an object inherits, which getPath would find on every event).
  function enginePath(path, keys) {
    if (typeof path !== "string") return null;
    if (keys && (path === "name" || path === "distinct_id")) return { field: path };
    var m = /^properties\.([^.]+)$/.exec(path);
    if (m === null || m[1] in Object.prototype) return null;
    return { property: m[1] };
  }

  function describeReducers(spec) {
    var list = Array.isArray(spec);
    var specs = list ? spec : [spec];
    var out = [];
    for (var i = 0; i < specs.length; i++) {
      var d = isBuiltin(specs[i]) ? DESCRIBED.get(specs[i]) : undefined;
      if (d === undefined) return null;
      var path = null;
      if (d.op !== "count") {
        path = enginePath(d.path, false);
        if (path === null) return null;
      }
      out.push({ op: d.op, path: path });
    }
    return { list: list, reducers: out };
  }

  function pushdownOf(collection) {
    var stages = collection.__stages;
    if (collection.__source.kind !== "events") return null;
    // groupByUser(any builtins).reduce(count()): the number of users (a builtin never throws)
    if (stages.length === 2 && stages[0].op === "groupByUser" && !stages[0].keys.length && stages[1].op === "reduce") {
      var each = Array.isArray(stages[0].spec) ? stages[0].spec : [stages[0].spec];
      var counted = describeReducers(stages[1].spec);
      if (each.length && each.every(isBuiltin) && counted !== null && !counted.list &&
          counted.reducers[0].op === "count") {
        return { shape: "users", keys: [], list: false, reducers: counted.reducers };
      }
      return null;
    }
    if (stages.length !== 1) return null;
    var st = stages[0];
    if (st.op !== "reduce" && st.op !== "groupBy" && st.op !== "groupByUser") return null;
    var r = describeReducers(st.spec);
    if (r === null) return null;
    var keys = [];
    if (st.op === "groupBy" || st.op === "groupByUser") {
      if (st.op === "groupByUser" && st.keys.length) return null;
      if (st.op === "groupBy" && !st.keys.length) return null;
      for (var i = 0; i < st.keys.length; i++) {
        var k = st.keys[i].multiple ? null : enginePath(st.keys[i].path, true);
        if (k === null) return null;
        keys.push(k);
      }
    }
    return { shape: st.op, keys: keys, list: r.list, reducers: r.reducers };
  }

  var state = { query: null, head: null, sink: null, users: null, seen: null, pending: null, at: 0 };

  function plan() {
    if (typeof global.main !== "function") throw JqlError("the script must define a function main()");
    var result = global.main();
    if (!(result instanceof Collection)) {
      throw JqlError("main() must return Events(), People() or join(), optionally followed by transformations; got " +
        (result === null ? "null" : typeof result));
    }
    state.query = result;
    state.sink = new Sink();
    var src = result.__source;
    // groupByUser (only ever first, after filters) asks for the events user by user
    var userOrder = result.__stages.some(function (st) { return st.op === "groupByUser"; });
    state.head = build(result.__stages, state.sink, userOrder);
    state.users = src.kind === "join" ? new Map() : null;
    state.seen = src.kind === "join" && (src.type === "full" || src.type === "right") ? new Set() : null;
    var plan = JSON.parse(JSON.stringify(src));
    plan.user_order = userOrder;
    plan.pushdown = pushdownOf(result);
    return JSON.stringify(plan);
  }

  // A batch of events as columns (JSON text): {"n": names, "d": distinct ids, "t": times, "p": properties}.
  function pushEvents(text) {
    var cols = JSON.parse(text);
    var n = cols.n.length, out = new Array(n);
    for (var i = 0; i < n; i++) {
      var did = cols.d[i];
      out[i] = {
        name: cols.n[i],
        distinct_id: did === null || did === "" ? undefined : did,
        time: cols.t[i],
        sampling_factor: 1,
        properties: cols.p[i] || {},
      };
    }
    var src = state.query.__source;
    if (src.kind === "join") {
      var users = state.users, type = src.type, tuples = [];
      for (var j = 0; j < n; j++) {
        var ev = out[j], u = ev.distinct_id === undefined ? undefined : users.get(ev.distinct_id);
        if (u === undefined && (type === "inner" || type === "right")) continue;
        if (state.seen !== null && u !== undefined) state.seen.add(ev.distinct_id);
        tuples.push({ distinct_id: ev.distinct_id, event: ev, user: u });
      }
      out = tuples;
    }
    return feed(out);
  }

  // Records into the pipeline SLICE at a time. Once OUT_BYTES of answer wait, the host is handed them
  // and calls resume() for the rest of the batch. Each call returns "1" (call resume) or "0" (done),
  // followed by the answer's text made meanwhile (items joined by commas, without brackets).
  function feed(items) {
    state.pending = items;
    state.at = 0;
    return resume();
  }

  function resume() {
    var items = state.pending, sink = state.sink;
    while (items !== null && state.at < items.length) {
      var end = Math.min(items.length, state.at + SLICE);
      state.head.push(items.slice(state.at, end));
      state.at = end;
      if (sink.bytes >= OUT_BYTES && state.at < items.length) return "1" + sink.drain();
    }
    state.pending = null;
    return "0" + sink.drain();
  }

  // A profile's `time` and `last_seen`: its `$last_seen` (the store keeps no other update time), in ms.
  function lastSeen(v) {
    if (typeof v === "number") return v;
    if (typeof v !== "string") return undefined;
    var ms = Date.parse(/[Zz]|[+-]\d{2}:?\d{2}$/.test(v) ? v : v + "Z");
    return isFinite(ms) ? ms : undefined;
  }

  function userObjects(text) {
    var cols = JSON.parse(text);
    var n = cols.d.length, out = new Array(n);
    for (var i = 0; i < n; i++) {
      var props = cols.p[i] || {};
      var seen = lastSeen(props.$last_seen);
      out[i] = { distinct_id: cols.d[i], time: seen, last_seen: seen, properties: props };
    }
    return out;
  }

  // A batch of profiles: the collection itself for People(), the lookup side for join().
  function pushUsers(text) {
    var users = userObjects(text);
    if (state.users !== null) {
      for (var i = 0; i < users.length; i++) state.users.set(users[i].distinct_id, users[i]);
      return "0";
    }
    return feed(users);
  }

  function finish() {
    var src = state.query.__source;
    if (src.kind === "join" && state.seen !== null) {
      // full and right joins: the users that had no event, with `event` undefined
      var rest = [];
      var seen = state.seen;
      var head = state.head;
      state.users.forEach(function (u, id) {
        if (!seen.has(id)) {
          rest.push({ distinct_id: id, event: undefined, user: u });
          if (rest.length >= CHUNK) { head.push(rest); rest = []; }
        }
      });
      if (rest.length) head.push(rest);
    }
    state.users = null;
    state.seen = null;
    state.head.finish();
    return state.sink.drain();
  }

  // ---- builtins -----------------------------------------------------------------------------

  var DAY = 86400000;

  function timeBucket(unit) {
    return { __time_bucket: unit };
  }

  function bucketTime(ms, unit) {
    if (unit === "day") return Math.floor(ms / DAY) * DAY;
    if (unit === "week") return Math.floor((ms - 4 * DAY) / (7 * DAY)) * 7 * DAY + 4 * DAY; // 1970-01-05 was a Monday
    var d = new Date(ms);
    var y = d.getUTCFullYear(), m = d.getUTCMonth();
    if (unit === "month") return Date.UTC(y, m, 1);
    if (unit === "quarter") return Date.UTC(y, m - (m % 3), 1);
    return Date.UTC(y, 0, 1);
  }

  function numeric_bucket(accessor, spec) {
    var get = accessorFn(accessor);
    var f;
    if (spec && spec.__time_bucket) {
      f = function (item) {
        var v = get(item);
        return isNumber(v) ? bucketTime(v, spec.__time_bucket) : undefined;
      };
    } else if (Array.isArray(spec)) {
      var bounds = spec.slice().sort(function (a, b) { return a - b; });
      f = function (item) {
        var v = get(item);
        if (!isNumber(v) || bounds.length === 0 || v < bounds[0]) return undefined;
        var lo = 0, hi = bounds.length - 1;
        while (lo < hi) {
          var mid = (lo + hi + 1) >> 1;
          if (bounds[mid] <= v) lo = mid; else hi = mid - 1;
        }
        return bounds[lo];
      };
    } else if (spec && isNumber(spec.bucket_size) && spec.bucket_size > 0) {
      var size = spec.bucket_size, offset = isNumber(spec.offset) ? spec.offset : 0;
      f = function (item) {
        var v = get(item);
        return isNumber(v) ? Math.floor((v - offset) / size) * size + offset : undefined;
      };
    } else {
      throw JqlError("numeric_bucket: the spec must be a list of bounds, {bucket_size, offset} or a mixpanel.*_time_buckets constant");
    }
    return f;
  }

  var ISO_DATE = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/;

  function to_number(accessor) {
    var get = accessorFn(accessor);
    return function (item) {
      var v = get(item);
      if (typeof v === "number") return isFinite(v) ? v : undefined;
      if (typeof v === "boolean") return v ? 1 : 0;
      if (v instanceof Date) return v.getTime() / 1000;
      if (typeof v === "string") {
        var t = v.trim();
        if (t === "") return undefined;
        var n = Number(t);
        if (isFinite(n)) return n;
        if (ISO_DATE.test(t)) {
          var ms = Date.parse(/[Zz]|[+-]\d{2}:?\d{2}$/.test(t) || t.length === 10 ? t : t.replace(" ", "T") + "Z");
          return isFinite(ms) ? ms / 1000 : undefined;
        }
      }
      return undefined;
    };
  }

  function slice(accessor, start, limit) {
    var get = accessorFn(accessor);
    return function (item) {
      var v = get(item);
      if (!Array.isArray(v)) v = [v];
      return v.slice(start, limit === undefined ? undefined : limit);
    };
  }

  function multiple_keys(keys) {
    var list = Array.isArray(keys) ? keys : [keys];
    var out = list.map(function (k) { return { __multiple_key: true, spec: k }; });
    out.__multiple = true;
    return out;
  }

  var mixpanel = {
    reducer: reducer,
    numeric_bucket: numeric_bucket,
    to_number: to_number,
    slice: slice,
    multiple_keys: multiple_keys,
    daily_time_buckets: timeBucket("day"),
    weekly_time_buckets: timeBucket("week"),
    monthly_time_buckets: timeBucket("month"),
    quarterly_time_buckets: timeBucket("quarter"),
    annual_time_buckets: timeBucket("year"),
    events: Events,
    people: People,
    join: join,
  };

  Object.defineProperty(global, "mixpanel", { value: Object.freeze(mixpanel), enumerable: false });
  Object.defineProperty(global, "Events", { value: Events, enumerable: false });
  Object.defineProperty(global, "People", { value: People, enumerable: false });
  Object.defineProperty(global, "join", { value: join, enumerable: false });
  Object.defineProperty(global, "__jql", {
    value: Object.freeze({ plan: plan, pushEvents: pushEvents, pushUsers: pushUsers, resume: resume, finish: finish }),
    enumerable: false,
  });
})(globalThis);
